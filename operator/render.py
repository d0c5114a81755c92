"""Children of an AIGateway, rendered as plain manifests (pure).

ServiceAccount, ConfigMap (the compiled config), Deployment, Service, HorizontalPodAutoscaler,
PodDisruptionBudget, and the Prometheus Operator's ServiceMonitor and PrometheusRule. Every child
carries an ownerReference to the gateway (garbage collection) and our labels.

The pod template changes only when a restart is truly needed: the image, resources, Secret
references (env) and the process settings (`aimm.io/restart-hash`). Model, route and budget edits
only change the ConfigMap, which the gateway re-reads on its own.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from typing import Any

from aimm_operator.alerts import AlertParams, Selectors, rule_group
from aimm_operator.compile import CONFIG_DIR, CONFIG_KEY, KEYS_SUBDIR, KEYS_WORKDIR, LISTEN_PORT, Compiled
from aimm_operator.crd.common import API_VERSION
from aimm_operator.objects import Gateway

MANAGER = "aimm-operator"
APP_NAME = "ai-multimodel-gateway"
ANN_CONFIG_HASH = "aimm.io/config-hash"
ANN_RESTART_HASH = "aimm.io/restart-hash"
LABEL_GATEWAY = "aimm.io/gateway"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
RUN_AS = 65532
COMPRESS_ABOVE = 256 * 1024  # bytes of JSON kept readable in `data`; larger configs are gzipped
TERMINATION_GRACE_S = 30  # the pod's terminationGracePeriodSeconds
KILL_MARGIN_S = 5  # the gateway stops draining this long before the kubelet's SIGKILL
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"  # the compiled config, as mounted in the pod

Manifest = dict[str, Any]


def names(gateway_name: str) -> dict[str, str]:
    return {
        "serviceaccount": f"{gateway_name}-gateway",
        "configmap": f"{gateway_name}-config",
        "deployment": gateway_name,
        "service": gateway_name,
        "hpa": gateway_name,
        "pdb": gateway_name,
        "servicemonitor": gateway_name,
        "prometheusrule": gateway_name,
    }


def selector_labels(gw: Gateway) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": gw.name}


def labels(gw: Gateway) -> dict[str, str]:
    return {
        **selector_labels(gw),
        "app.kubernetes.io/component": "gateway",
        "app.kubernetes.io/part-of": "ai-multimodel",
        "app.kubernetes.io/managed-by": MANAGER,
        LABEL_GATEWAY: gw.name,
    }


def owner_reference(gw: Gateway) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "AIGateway",
        "name": gw.name,
        "uid": gw.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(gw: Gateway, name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": gw.namespace,
        "labels": labels(gw),
        "ownerReferences": [owner_reference(gw)],
    }
    if annotations:
        meta["annotations"] = annotations
    return meta


def service_account(gw: Gateway) -> Manifest:
    assert gw.spec is not None
    annotations = dict(gw.spec.placement.service_account_annotations) or None
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(gw, names(gw.name)["serviceaccount"], annotations),
        "automountServiceAccountToken": False,
    }


def config_map(gw: Gateway, compiled: Compiled) -> Manifest:
    """The config as readable JSON; above COMPRESS_ABOVE gzipped into binaryData under the same key
    (same file in the pod, recognised by its magic bytes), so thousands of models fit one object."""
    assert compiled.config_json is not None and compiled.config_hash is not None
    payload: dict[str, Any]
    if len(compiled.config_json) > COMPRESS_ABOVE:
        packed = gzip.compress(compiled.config_json.encode(), compresslevel=9, mtime=0)  # mtime 0: same bytes
        payload = {"binaryData": {CONFIG_KEY: base64.b64encode(packed).decode()}}
    else:
        payload = {"data": {CONFIG_KEY: compiled.config_json}}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(gw, names(gw.name)["configmap"], {ANN_CONFIG_HASH: compiled.config_hash}),
        **payload,
    }


RESTRICTED_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def worker_env(shared_state: bool) -> list[dict[str, Any]]:
    """Worker count and drain time (docs/workers.md): with shared state (spec.redis), one worker
    per requested core, rounded up by the downward API (a node has more cores than the pod's
    share); without it one worker, since workers would each count budgets and limits on their
    own. SIGTERM draining ends before the kubelet's SIGKILL."""
    cores = {"resourceFieldRef": {"containerName": "gateway", "resource": "requests.cpu", "divisor": "1"}}
    workers: dict[str, Any] = {"name": "AIMM_WORKERS"}
    workers.update({"valueFrom": cores} if shared_state else {"value": "1"})
    return [workers, {"name": "AIMM_GRACE_PERIOD_S", "value": str(TERMINATION_GRACE_S - KILL_MARGIN_S)}]


def container(gw: Gateway, compiled: Compiled) -> dict[str, Any]:
    assert gw.spec is not None
    spec = gw.spec
    env = [
        {"name": e.env, "valueFrom": {"secretKeyRef": {"name": e.secret, "key": e.key}}} for e in compiled.secret_env
    ]
    env += worker_env(shared_state=spec.redis is not None)
    # The gateway's namespace (usage rows, namespace-scoped budgets), from the downward API.
    env.append({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
    return {
        "name": "gateway",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": [
            "aimm",
            "gateway",
            "serve",
            "--config",
            CONFIG_PATH,
            "--host",
            "0.0.0.0",
            "--port",
            str(LISTEN_PORT),
        ],
        "ports": [{"name": "http", "containerPort": LISTEN_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": {
            "requests": dict(spec.resources.requests),
            "limits": dict(spec.resources.limits),
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "securityContext": RESTRICTED_CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            *(
                {"name": v, "mountPath": f"{KEYS_WORKDIR}/{KEYS_SUBDIR}/{s}", "readOnly": True}
                for v, s in key_volumes(compiled)
            ),
        ],
    }


def schema_upgrade(gw: Gateway, gateway: dict[str, Any]) -> list[dict[str, Any]]:
    """With spec.database, an init container applies pending usage-store migrations before the
    gateway starts (a replica refuses a schema that is behind). `aimm db upgrade` holds an advisory
    lock, so replicas starting together take turns; once current, it is a no-op."""
    assert gw.spec is not None
    if gw.spec.database is None:
        return []
    keep = ("image", "imagePullPolicy", "env", "resources", "securityContext", "volumeMounts", "workingDir")
    init = {k: gateway[k] for k in keep if k in gateway}
    return [{"name": "db-upgrade", **init, "command": ["aimm", "db", "upgrade", "--config", CONFIG_PATH]}]


def with_keys(container: dict[str, Any], compiled: Compiled) -> dict[str, Any]:
    """Model key files are referenced relative to the working directory, where their Secrets are mounted."""
    return {**container, "workingDir": KEYS_WORKDIR} if compiled.key_secrets else container


def key_volumes(compiled: Compiled) -> list[tuple[str, str]]:
    """(volume name, Secret name) per Secret holding model keys. Whole Secrets, no `items`: a key
    added to or rotated in a mounted Secret reaches the pods (kubelet refresh) without a new template."""
    return [(f"keys-{hashlib.sha256(s.encode()).hexdigest()[:12]}", s) for s in compiled.key_secrets]


def placement(gw: Gateway) -> dict[str, Any]:
    """The pod-spec fields of spec.placement, passed through (the API server validates them)."""
    assert gw.spec is not None
    p = gw.spec.placement
    out: dict[str, Any] = {
        "topologySpreadConstraints": p.topology_spread_constraints
        if p.topology_spread_constraints is not None
        else [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector_labels(gw)},
            }
        ]
    }
    if p.node_selector:
        out["nodeSelector"] = dict(p.node_selector)
    if p.tolerations:
        out["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in p.tolerations]
    if p.affinity:
        out["affinity"] = p.affinity
    if p.image_pull_secrets:
        out["imagePullSecrets"] = [{"name": n} for n in p.image_pull_secrets]
    if p.priority_class_name:
        out["priorityClassName"] = p.priority_class_name
    return out


def pod_spec(gw: Gateway, compiled: Compiled) -> dict[str, Any]:
    gateway = with_keys(container(gw, compiled), compiled)
    init = schema_upgrade(gw, gateway)
    return {
        "serviceAccountName": names(gw.name)["serviceaccount"],
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **({"initContainers": init} if init else {}),
        "containers": [gateway],
        "volumes": [
            # A whole-directory mount (not subPath), so ConfigMap updates reach the pod.
            {"name": "config", "configMap": {"name": names(gw.name)["configmap"]}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            # optional: a missing Secret makes its models unusable (reported by the gateway), not the pod.
            *({"name": v, "secret": {"secretName": s, "optional": True}} for v, s in key_volumes(compiled)),
        ],
        **placement(gw),
    }


def deployment(gw: Gateway, compiled: Compiled) -> Manifest:
    assert gw.spec is not None
    spec = gw.spec
    dep_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(gw)},
        "revisionHistoryLimit": 5,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {
                "maxSurge": spec.rollout.max_surge,
                "maxUnavailable": spec.rollout.max_unavailable,
            },
        },
        "template": {
            "metadata": {
                "labels": {**spec.placement.pod_labels, **labels(gw)},  # ours win: the selector needs them
                "annotations": {
                    **spec.placement.pod_annotations,
                    ANN_RESTART_HASH: compiled.restart_hash,
                    "kubectl.kubernetes.io/default-container": "gateway",
                },
            },
            "spec": pod_spec(gw, compiled),
        },
    }
    if not spec.autoscaling.enabled:
        # Without an HPA we own the scale; with one, spec.replicas is left to the HPA.
        dep_spec["replicas"] = spec.replicas.min
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(gw, names(gw.name)["deployment"]),
        "spec": dep_spec,
    }


def service(gw: Gateway) -> Manifest:
    assert gw.spec is not None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(gw, names(gw.name)["service"]),
        "spec": {
            "type": gw.spec.service.type,
            "selector": selector_labels(gw),
            "ports": [{"name": "http", "port": gw.spec.service.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def hpa(gw: Gateway) -> Manifest:
    assert gw.spec is not None
    behavior = gw.spec.autoscaling.behavior
    extra = {"behavior": behavior.model_dump(by_alias=True, exclude_none=True)} if behavior is not None else {}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(gw, names(gw.name)["hpa"]),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": names(gw.name)["deployment"],
            },
            "minReplicas": gw.spec.replicas.min,
            "maxReplicas": gw.spec.replicas.max,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": gw.spec.autoscaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
            **extra,
        },
    }


def pdb(gw: Gateway) -> Manifest:
    assert gw.spec is not None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(gw, names(gw.name)["pdb"]),
        "spec": {
            "maxUnavailable": gw.spec.rollout.max_unavailable,
            "selector": {"matchLabels": selector_labels(gw)},
        },
    }


def _monitoring_meta(gw: Gateway, name: str) -> dict[str, Any]:
    """Metadata of a Prometheus Operator child: spec.monitoring.labels let a Prometheus select it."""
    assert gw.spec is not None
    meta = _meta(gw, name)
    meta["labels"] = {**gw.spec.monitoring.labels, **meta["labels"]}  # ours win: ownership needs them
    return meta


def service_monitor(gw: Gateway) -> Manifest:
    assert gw.spec is not None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _monitoring_meta(gw, names(gw.name)["servicemonitor"]),
        "spec": {
            "selector": {"matchLabels": selector_labels(gw)},
            "namespaceSelector": {"matchNames": [gw.namespace]},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": gw.spec.monitoring.scrape_interval}],
        },
    }


def prometheus_rule(gw: Gateway) -> Manifest:
    assert gw.spec is not None
    a = gw.spec.monitoring.alerts
    params = AlertParams(
        cost_usd_per_hour=a.cost_usd_per_hour,
        error_rate_percent=a.error_rate_percent,
        p95_latency_seconds=a.p95_latency_seconds,
        unavailable_minutes=a.unavailable_minutes,
        budget_percent=a.budget_percent,
        projection_hours=a.projection_hours,
        min_replicas=gw.spec.replicas.min,
    )
    selectors = Selectors(
        sel=f'namespace="{gw.namespace}",service="{gw.name}"',
        deploy=f'namespace="{gw.namespace}",deployment="{names(gw.name)["deployment"]}"',
        where=f"AIGateway {gw.namespace}/{gw.name}",
    )
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _monitoring_meta(gw, names(gw.name)["prometheusrule"]),
        "spec": {"groups": [rule_group(f"aimm.{gw.namespace}.{gw.name}", params, selectors)]},
    }


def children(gw: Gateway, compiled: Compiled, monitoring_kinds: frozenset[str]) -> list[Manifest]:
    """Every child to apply, in dependency order. ConfigMap only when the compile succeeded."""
    assert gw.spec is not None
    out = [service_account(gw)]
    if compiled.ok:
        out.append(config_map(gw, compiled))
    out += [service(gw), deployment(gw, compiled), pdb(gw)]
    if gw.spec.autoscaling.enabled:
        out.append(hpa(gw))
    if gw.spec.monitoring.service_monitor and "ServiceMonitor" in monitoring_kinds:
        out.append(service_monitor(gw))
    if gw.spec.monitoring.prometheus_rule and "PrometheusRule" in monitoring_kinds:
        out.append(prometheus_rule(gw))
    return out


def unwanted(gw: Gateway, monitoring_kinds: frozenset[str]) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of optional children the spec no longer asks for (to delete)."""
    assert gw.spec is not None
    n = names(gw.name)
    out = []
    if not gw.spec.autoscaling.enabled:
        out.append(("autoscaling/v2", "HorizontalPodAutoscaler", n["hpa"]))
    if not gw.spec.monitoring.service_monitor and "ServiceMonitor" in monitoring_kinds:
        out.append(("monitoring.coreos.com/v1", "ServiceMonitor", n["servicemonitor"]))
    if not gw.spec.monitoring.prometheus_rule and "PrometheusRule" in monitoring_kinds:
        out.append(("monitoring.coreos.com/v1", "PrometheusRule", n["prometheusrule"]))
    return out
