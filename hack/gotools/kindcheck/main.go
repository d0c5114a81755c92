// kindcheck validates a kind cluster config with kind's own code and prints the parsed config.
//
// It calls kind's cluster creation with the file: kind loads it (strict decoding into its
// config types, so an unknown or misspelt field is an error), defaults and validates it, and
// only then provisions nodes through the container runtime. That runtime is a stub `docker`,
// alone on PATH, which records the first provisioning command and fails it: nothing is created.
// Reaching it means kind accepted the config; failing before it means kind rejected it.
//
// Usage: kindcheck FILE   (exit 0 and the config as JSON on stdout when valid, 1 otherwise)
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/log"
	"sigs.k8s.io/yaml"
)

// The stub answers the two questions kind asks before validating (`docker info`: a healthy
// cgroup v2 runtime; `docker ps`: no cluster of that name yet) and fails everything else.
const stub = `#!/bin/sh
case "$1" in
  info) echo '{"CgroupDriver":"systemd","CgroupVersion":"2","MemoryLimit":true,"PidsLimit":true,"CPUShares":true,"SecurityOptions":["name=seccomp,profile=builtin","name=cgroupns"]}' ;;
  ps) ;;
  *) echo "$*" > "$KINDCHECK_MARKER"; exit 1 ;;
esac
`

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kindcheck FILE")
		os.Exit(2)
	}
	if err := check(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "invalid:", err)
		os.Exit(1)
	}
}

func check(path string) error {
	dir, err := os.MkdirTemp("", "kindcheck")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	marker := filepath.Join(dir, "reached")
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(stub), 0o755); err != nil {
		return err
	}
	os.Setenv("KINDCHECK_MARKER", marker)
	os.Setenv("PATH", dir)
	provider := cluster.NewProvider(cluster.ProviderWithDocker(), cluster.ProviderWithLogger(log.NoopLogger{}))
	createErr := provider.Create("kindcheck", cluster.CreateWithConfigFile(path), cluster.CreateWithRetain(true))
	if _, err := os.Stat(marker); err != nil {
		if createErr == nil {
			return fmt.Errorf("kind neither failed nor reached the container runtime")
		}
		return createErr // rejected before any node was provisioned
	}
	// Accepted: print the config as kind's public v1alpha4 types read it (strictly).
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		return err
	}
	v1alpha4.SetDefaultsCluster(&cfg)
	return json.NewEncoder(os.Stdout).Encode(cfg)
}
