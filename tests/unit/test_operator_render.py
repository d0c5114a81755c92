"""Children of an AIGateway as manifests: fields, ownership, restart policy, optional children."""

from __future__ import annotations

from aimm_operator import render
from aimm_operator.compile import compile_gateway
from tests.unit.operator_fixtures import gw, model, snapshot

MON = frozenset({"ServiceMonitor", "PrometheusRule"})


def build(gateway: dict | None = None, models: list[dict] | None = None, monitoring: frozenset[str] = frozenset()):  # type: ignore[no-untyped-def]
    snap = snapshot(gateways=[gateway or gw()], models=models or [model("m")])
    g = snap.gateways[0]
    c = compile_gateway(g, snap)
    return g, c, {m["kind"]: m for m in render.children(g, c, monitoring)}


def test_children_and_ownership() -> None:
    g, _, kids = build()
    assert list(kids) == [
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    ]
    for m in kids.values():
        assert m["metadata"]["ownerReferences"] == [render.owner_reference(g)]
        assert m["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "aimm-operator"
        assert m["metadata"]["namespace"] == "ns"


def test_deployment_leaves_scale_to_hpa() -> None:
    _, _, kids = build()
    assert "replicas" not in kids["Deployment"]["spec"]
    hpa = kids["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (5, 50)
    _, _, fixed = build(gw(autoscaling={"enabled": False}, replicas={"min": 3, "max": 9}))
    assert fixed["Deployment"]["spec"]["replicas"] == 3 and "HorizontalPodAutoscaler" not in fixed


def test_pod_template_security_and_probes() -> None:
    _, _, kids = build()
    pod = kids["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["securityContext"] == render.RESTRICTED_CONTAINER_SECURITY
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready" and c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert {"name": "config", "mountPath": "/etc/aimm", "readOnly": True} in c["volumeMounts"]
    assert "subPath" not in str(c["volumeMounts"])  # subPath mounts never see ConfigMap updates


def test_model_edits_keep_the_template_secret_refs_change_it() -> None:
    _, _, a = build(models=[model("m", weight=1)])
    _, _, b = build(models=[model("m", weight=9), model("n", quality=0.1)])
    assert a["Deployment"]["spec"]["template"] == b["Deployment"]["spec"]["template"]
    assert a["ConfigMap"]["data"] != b["ConfigMap"]["data"]
    _, _, c = build(models=[model("m", apiKeySecretRef={"name": "s", "key": "k"})])
    assert c["Deployment"]["spec"]["template"] != a["Deployment"]["spec"]["template"]
    pod = c["Deployment"]["spec"]["template"]["spec"]
    (vol,) = [v for v in pod["volumes"] if "secret" in v]
    assert vol["secret"] == {"secretName": "s", "optional": True}
    container = pod["containers"][0]
    names = [e["name"] for e in container["env"]]
    assert names == ["AIMM_OPERATOR_KEY", "AIMM_WORKERS", "AIMM_GRACE_PERIOD_S", "POD_NAMESPACE"]
    assert container["env"][-1]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert container["workingDir"] == "/var/run/aimm"
    assert {"name": vol["name"], "mountPath": "/var/run/aimm/keys/s", "readOnly": True} in container["volumeMounts"]
    # More models with keys in the same Secret: same template, no rollout.
    _, _, d = build(
        models=[
            model("m", apiKeySecretRef={"name": "s", "key": "k"}),
            model("n", apiKeySecretRef={"name": "s", "key": "n"}),
        ]
    )
    assert d["Deployment"]["spec"]["template"] == c["Deployment"]["spec"]["template"]


def test_monitoring_children_only_when_installed_and_wanted() -> None:
    g, _c, kids = build(monitoring=MON)
    assert kids["ServiceMonitor"]["spec"]["endpoints"][0] == {"port": "http", "path": "/metrics", "interval": "30s"}
    rules = kids["PrometheusRule"]["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {"AIMMHighErrorRate", "AIMMHighLatency", "AIMMModelUnavailable"}
    assert "> 0.05" in next(r["expr"] for r in rules if r["alert"] == "AIMMHighErrorRate")
    assert render.unwanted(g, MON) == []
    off = snapshot(
        gateways=[gw(monitoring={"serviceMonitor": False, "prometheusRule": False}, autoscaling={"enabled": False})]
    ).gateways[0]
    kinds = {k for _, k, _ in render.unwanted(off, MON)}
    assert kinds == {"ServiceMonitor", "PrometheusRule", "HorizontalPodAutoscaler"}
    assert {k for _, k, _ in render.unwanted(off, frozenset())} == {"HorizontalPodAutoscaler"}


def test_monitoring_labels_reach_the_service_monitor_and_rule_but_not_other_children() -> None:
    extra = {"release": "kube-prometheus-stack", "app.kubernetes.io/name": "not-ours"}
    g, _c, kids = build(gateway=gw(monitoring={"labels": extra}), monitoring=MON)
    for kind in ("ServiceMonitor", "PrometheusRule"):
        meta_labels = kids[kind]["metadata"]["labels"]
        assert meta_labels["release"] == "kube-prometheus-stack"
        assert meta_labels["app.kubernetes.io/name"] == render.labels(g)["app.kubernetes.io/name"]  # ours win
    assert "release" not in kids["Service"]["metadata"]["labels"]
    assert "release" not in kids["Deployment"]["metadata"]["labels"]


def test_failed_compile_keeps_the_last_configmap() -> None:
    snap = snapshot(gateways=[gw()], models=[model("m")])
    g = snap.gateways[0]
    c = compile_gateway(g, snap)
    broken = type(c)(c.gateway, None, None, None, c.restart_hash, c.secret_env, c.key_secrets, error="boom")
    kinds = [m["kind"] for m in render.children(g, broken, frozenset())]
    assert "ConfigMap" not in kinds and "Deployment" in kinds


def test_workers_from_cpu_request_and_grace_period_before_sigkill() -> None:
    """docs/workers.md: with shared state, one worker per requested core (the downward API rounds
    up); without it one worker (budgets and limits would be per worker); draining ends 5 s before
    the pod's terminationGracePeriodSeconds runs out."""
    redis = {"urlSecretRef": {"name": "keys", "key": "redis"}}
    _, _, kids = build(gw(redis=redis))
    pod = kids["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["AIMM_WORKERS"]["valueFrom"] == {
        "resourceFieldRef": {"containerName": c["name"], "resource": "requests.cpu", "divisor": "1"}
    }
    assert c["name"] == "gateway"
    assert int(env["AIMM_GRACE_PERIOD_S"]["value"]) == pod["terminationGracePeriodSeconds"] - 5 > 0
    _, _, alone = build()
    (c,) = alone["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e for e in c["env"]}["AIMM_WORKERS"] == {"name": "AIMM_WORKERS", "value": "1"}


def test_compiled_config_allows_deliberate_shrinks() -> None:
    """The gateway refuses a reload dropping >25 % of models unless the new file allows it; the
    operator's config is the API server's truth, so deleting most AIModels must reach the pods."""
    _, c, _ = build()
    assert c.config is not None and c.config.hardening.reload.allow_shrink is True


def test_database_adds_a_schema_upgrade_init_container() -> None:
    """With spec.database the pod upgrades the usage store's schema before the gateway starts
    (a replica refuses a schema that is behind); without it there is no init container."""
    _, _, plain = build()
    assert "initContainers" not in plain["Deployment"]["spec"]["template"]["spec"]
    _, _, kids = build(gw(database={"urlSecretRef": {"name": "db", "key": "url"}}))
    pod = kids["Deployment"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (main,) = pod["containers"]
    assert init["command"] == ["aimm", "db", "upgrade", "--config", "/etc/aimm/config.yaml"]
    assert main["command"][3:5] == ["--config", "/etc/aimm/config.yaml"]
    assert init["securityContext"] == render.RESTRICTED_CONTAINER_SECURITY
    assert init["image"] == main["image"] and init["env"] == main["env"]  # the DSN from its Secret
    assert {"name": "AIMM_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}} in init["env"]
    assert init["volumeMounts"] == main["volumeMounts"] and "ports" not in init and "readinessProbe" not in init
