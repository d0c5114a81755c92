//go:build tools

// Package tools pins the Kubernetes commands that hack/envtest.sh builds, so
// that `go mod tidy` keeps every module they need in go.mod/go.sum.
package tools

import (
	// etcd, at the version k8s.io/kubernetes itself pins (ETCD_SOURCE=go).
	_ "go.etcd.io/etcd/server/v3"

	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
