"""An AIGateway yields its children with the right fields; status and conditions follow kstatus."""

from __future__ import annotations

import yaml

from aimm_gateway.config import parse_config
from tests.operator.kubeapi import Api, wait_condition, wait_for
from tests.operator.manifests import budget, gateway, model, policy, route

SECRET_VALUE = "sk-live-must-never-leak-0123456789"
CHILD_KINDS = ("ServiceAccount", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")


def names(gw: str) -> dict[str, str]:
    return {
        "ServiceAccount": f"{gw}-gateway",
        "ConfigMap": f"{gw}-config",
        "Deployment": gw,
        "Service": gw,
        "HorizontalPodAutoscaler": gw,
        "PodDisruptionBudget": gw,
    }


def setup_fleet(api: Api, ns: str) -> dict:
    api.create_secret(
        ns,
        "keys",
        {"openai": SECRET_VALUE, "client": "client-key", "admin": "admin-token", "redis": "redis://r:6379/0"},
    )
    api.apply(
        model(
            ns,
            "gpt",
            provider="openai",
            upstream="gpt-4o-mini",
            apiKeySecretRef={"name": "keys", "key": "openai"},
            pricing={"inputPer1k": 0.00015, "outputPer1k": 0.0006},
            labels={"tier": "premium"},
        )
    )
    api.apply(model(ns, "cheap", labels={"tier": "basic"}))
    api.apply(policy(ns, "rp", [route("smart", ("gpt", 3), ("cheap", 1))], algorithm="weighted", fallback=["cheap"]))
    api.apply(budget(ns, "monthly", 100, alertThresholds=[50, 80, 100], action="block"))
    return api.apply(
        gateway(
            ns,
            "gw",
            auth={
                "apiKeySecretRef": {"name": "keys", "key": "client"},
                "adminTokenSecretRef": {"name": "keys", "key": "admin"},
            },
            redis={"urlSecretRef": {"name": "keys", "key": "redis"}},
            routing={"defaultRoute": "smart"},
        )
    )


def test_gateway_children_and_status(api: Api, running, ns: str) -> None:
    gw = setup_fleet(api, ns)
    n = names("gw")
    cm = wait_for(lambda: api.get("ConfigMap", ns, n["ConfigMap"]), what="ConfigMap")
    gw = wait_condition(api, "AIGateway", ns, "gw", "Progressing", "True", reason="RolloutInProgress")

    # Every child exists, is owned by the gateway (GC) and was written by server-side apply.
    uid = gw["metadata"]["uid"]
    for kind in CHILD_KINDS:
        obj = wait_for(lambda kind=kind: api.get(kind, ns, n[kind]), what=kind)
        refs = obj["metadata"]["ownerReferences"]
        assert refs == [
            {
                "apiVersion": "aimm.io/v1alpha1",
                "kind": "AIGateway",
                "name": "gw",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], kind
        managers = {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]}
        assert ("aimm-operator", "Apply") in managers, (kind, managers)
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "aimm-operator"

    # ConfigMap: a valid gateway config; Secrets referenced, never copied.
    text = cm["data"]["config.yaml"]
    assert SECRET_VALUE not in text and "client-key" not in text
    config = parse_config(yaml.safe_load(text))
    assert {m.name for m in config.models} == {"gpt", "cheap"}
    gpt = next(m for m in config.models if m.name == "gpt")
    assert gpt.upstream_model == "gpt-4o-mini" and gpt.api_key is not None and gpt.api_key.file == "keys/keys/openai"
    assert [r.name for r in config.routes] == ["smart"]
    assert config.routes[0].algorithm == "weighted" and config.routes[0].fallbacks == ["cheap"]
    assert {t.model: t.weight for t in config.routes[0].targets} == {"gpt": 3, "cheap": 1}
    assert [b.name for b in config.budgets] == ["monthly"] and config.budgets[0].action == "block"
    assert config.server.default_model == "smart"
    assert config.auth.api_keys[0].key.env == "AIMM_API_KEY" and config.admin.token.env == "AIMM_ADMIN_TOKEN"
    assert cm["metadata"]["annotations"]["aimm.io/config-hash"] == gw["status"]["configHash"]

    # Deployment: scale left to the HPA, rolling update per spec, probes, restricted securityContext.
    dep = api.get("Deployment", ns, n["Deployment"])
    ours = [m for m in dep["metadata"]["managedFields"] if m["manager"] == "aimm-operator"]
    assert all("f:replicas" not in m["fieldsV1"].get("f:spec", {}) for m in ours)
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 1}}
    tpl = dep["spec"]["template"]
    pod = tpl["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "ghcr.io/aimm/ai-multimodel:0.1.0"
    assert c["command"][:5] == ["aimm", "gateway", "serve", "--config", "/etc/aimm/config.yaml"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready" and c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    # Workers and drain time (docs/workers.md), as the API server accepted them.
    workers = {e["name"]: e for e in c["env"]}
    assert workers["AIMM_WORKERS"]["valueFrom"]["resourceFieldRef"] == {
        "containerName": "gateway",
        "resource": "requests.cpu",
        "divisor": "1",
    }
    assert workers["AIMM_GRACE_PERIOD_S"]["value"] == str(pod["terminationGracePeriodSeconds"] - 5)
    assert env == {
        "AIMM_API_KEY": {"name": "keys", "key": "client"},
        "AIMM_ADMIN_TOKEN": {"name": "keys", "key": "admin"},
        "AIMM_REDIS_URL": {"name": "keys", "key": "redis"},
        "AIMM_OPERATOR_KEY": {"name": "gw-operator-viewer", "key": "key"},  # the operator's viewer key
    }
    assert {"name": "config", "configMap": {"name": "gw-config", "defaultMode": 420}} in pod["volumes"]
    # Model keys: one volume per Secret, files relative to the working directory.
    (keys,) = [v for v in pod["volumes"] if "secret" in v]
    assert keys["secret"] == {"secretName": "keys", "optional": True, "defaultMode": 420}
    assert c["workingDir"] == "/var/run/aimm"
    assert {"name": keys["name"], "mountPath": "/var/run/aimm/keys/keys", "readOnly": True} in c["volumeMounts"]
    assert "aimm.io/restart-hash" in tpl["metadata"]["annotations"]
    assert "aimm.io/config-hash" not in tpl["metadata"].get("annotations", {})
    assert pod["serviceAccountName"] == "gw-gateway"

    svc = api.get("Service", ns, "gw")
    assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["ports"][0]["targetPort"] == "http"
    hpa = api.get("HorizontalPodAutoscaler", ns, "gw")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (5, 50)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert api.get("PodDisruptionBudget", ns, "gw")["spec"]["maxUnavailable"] == 1
    assert api.get("ServiceAccount", ns, "gw-gateway")["automountServiceAccountToken"] is False

    # Status: kstatus-style, observedGeneration everywhere, the monitoring skip explained.
    st = gw["status"]
    assert st["observedGeneration"] == gw["metadata"]["generation"]
    types = {c["type"]: c for c in st["conditions"]}
    assert set(types) >= {"Ready", "Progressing", "Degraded", "Reconciling", "Stalled", "ResolvedRefs", "Monitoring"}
    assert types["Ready"]["status"] == "False"  # no kubelet here: pods never become ready
    assert types["Reconciling"]["status"] == "True" and types["Stalled"]["status"] == "False"
    assert types["Monitoring"]["status"] == "False" and types["Monitoring"]["reason"] == "NotInstalled"
    assert all(c["observedGeneration"] == gw["metadata"]["generation"] for c in st["conditions"])
    assert st["models"] == 2 and st["routes"] == 1 and st["budgets"] == 1
    assert st["endpoint"] == f"http://gw.{ns}.svc:80"

    # Our finalizer (added by kopf for the stats timer, right after the first reconcile), no kopf
    # annotations at all (watch-event handlers store no progress); the user's spec is never written.
    gw = wait_for(
        lambda: (
            (g := api.get("AIGateway", ns, "gw")) and g["metadata"].get("finalizers") == ["aimm.io/finalizer"] and g
        ),
        timeout=10,
        what="finalizer",
    )
    assert not [k for k in gw["metadata"].get("annotations", {}) if k.startswith(("kopf.zalando.org", "aimm.io/"))]
    for kind, name in (("AIGateway", "gw"), ("AIModel", "gpt"), ("RoutingPolicy", "rp"), ("CostBudget", "monthly")):
        obj = api.get(kind, ns, name)
        writers = {m["manager"] for m in obj["metadata"]["managedFields"] if "f:spec" in m.get("fieldsV1", {})}
        assert writers == {"aimm-tests"}, (kind, writers)

    for kind, name in (("AIModel", "gpt"), ("AIModel", "cheap"), ("RoutingPolicy", "rp"), ("CostBudget", "monthly")):
        obj = wait_condition(api, kind, ns, name)
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        assert obj["status"]["gateways"] == ["gw"]
    rp = api.get("RoutingPolicy", ns, "rp")
    assert api.condition(rp, "ResolvedRefs")["status"] == "True"
    assert (rp["status"]["routes"], rp["status"]["targets"]) == (1, 2)


def test_edits_propagate_within_5s_without_restart(api: Api, running, ns: str) -> None:
    setup_fleet(api, ns)
    wait_condition(api, "AIGateway", ns, "gw", "Progressing", "True")
    dep0 = api.get("Deployment", ns, "gw")

    def config() -> dict:
        return yaml.safe_load(api.get("ConfigMap", ns, "gw-config")["data"]["config.yaml"])

    def within_5s(check, what: str) -> None:
        wait_for(check, timeout=5, interval=0.05, what=what)

    api.apply(model(ns, "cheap", labels={"tier": "basic"}, weight=7, quality=0.9))
    within_5s(lambda: next(m for m in config()["models"] if m["name"] == "cheap")["weight"] == 7, "model edit")

    api.apply(
        policy(
            ns,
            "rp",
            [route("smart", ("gpt", 3), ("cheap", 1)), route("fast", "cheap")],
            algorithm="weighted",
            fallback=["cheap"],
        )
    )
    within_5s(lambda: [r["name"] for r in config()["routes"]] == ["smart", "fast"], "policy edit")

    api.apply(budget(ns, "monthly", 250, alertThresholds=[50, 80, 100], action="block"))
    within_5s(lambda: config()["budgets"][0]["limit_usd"] == "250.0", "budget edit")

    api.apply(model(ns, "new", labels={"tier": "basic"}))
    within_5s(lambda: "new" in [m["name"] for m in config()["models"]], "model added")
    api.delete("AIModel", ns, "new")
    within_5s(lambda: "new" not in [m["name"] for m in config()["models"]], "model deleted")

    # None of that restarted the pods: the pod template is untouched.
    dep1 = api.get("Deployment", ns, "gw")
    assert dep1["metadata"]["generation"] == dep0["metadata"]["generation"]
    assert dep1["spec"]["template"] == dep0["spec"]["template"]

    # Another key of an already mounted Secret: still no restart (the config names the file).
    api.apply(model(ns, "new", labels={"tier": "basic"}, apiKeySecretRef={"name": "keys", "key": "client"}))
    within_5s(lambda: any(m["name"] == "new" for m in config()["models"]), "model with a key added")
    assert api.get("Deployment", ns, "gw")["metadata"]["generation"] == dep0["metadata"]["generation"]

    # A Secret not mounted yet: one rollout, for its volume.
    api.apply(
        model(
            ns,
            "gpt",
            provider="openai",
            upstream="gpt-4o-mini",
            apiKeySecretRef={"name": "other-keys", "key": "openai"},
            labels={"tier": "premium"},
        )
    )
    within_5s(
        lambda: api.get("Deployment", ns, "gw")["metadata"]["generation"] > dep0["metadata"]["generation"],
        "a new Secret reaches the pod template",
    )
    pod = api.get("Deployment", ns, "gw")["spec"]["template"]["spec"]
    assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {"keys", "other-keys"}


def test_model_selector_and_label_changes(api: Api, running, ns: str) -> None:
    api.apply(model(ns, "a", labels={"team": "x"}))
    api.apply(model(ns, "b", labels={"team": "y"}))
    api.apply(gateway(ns, "gw", modelSelector={"matchLabels": {"team": "x"}}))

    def served() -> list[str]:
        cm = api.get("ConfigMap", ns, "gw-config")
        return [m["name"] for m in yaml.safe_load(cm["data"]["config.yaml"])["models"]] if cm else []

    wait_for(lambda: served() == ["a"], what="only team x")
    b = wait_condition(api, "AIModel", ns, "b", "Ready", "False", reason="NotSelected")
    assert b["status"]["gateways"] == []
    api.apply(model(ns, "b", labels={"team": "x"}))
    wait_for(lambda: served() == ["a", "b"], timeout=5, what="relabelled model joins")
    wait_condition(api, "AIModel", ns, "b", "Ready", "True", reason="Accepted")


def test_deleting_gateway_garbage_collects_children(api: Api, running, ns: str) -> None:
    api.apply(model(ns, "m"))
    api.apply(gateway(ns, "gw"))
    n = names("gw")
    for kind in CHILD_KINDS:
        wait_for(lambda kind=kind: api.get(kind, ns, n[kind]), what=kind)
    wait_condition(api, "AIModel", ns, "m", "Ready", "True")
    api.delete("AIGateway", ns, "gw")
    wait_for(lambda: api.get("AIGateway", ns, "gw") is None, what="gateway gone (finalizer released)")
    for kind in CHILD_KINDS:
        wait_for(lambda kind=kind: api.get(kind, ns, n[kind]) is None, timeout=30, what=f"{kind} collected")
    m = wait_condition(api, "AIModel", ns, "m", "Ready", "False", reason="NotSelected")
    assert m["status"]["gateways"] == []


def test_missing_model_reference_sets_resolved_refs_false(api: Api, running, ns: str) -> None:
    api.apply(model(ns, "real"))
    api.apply(policy(ns, "rp", [route("smart", "real", "ghost")], fallback=["phantom"]))
    api.apply(gateway(ns, "gw"))
    rp = wait_condition(api, "RoutingPolicy", ns, "rp", "ResolvedRefs", "False", reason="AIModelNotFound")
    msg = api.condition(rp, "ResolvedRefs")["message"]
    assert "'ghost'" in msg and "'phantom'" in msg
    assert api.condition(rp, "Ready")["status"] == "False"
    # The route still serves with what resolves.
    cm = wait_for(lambda: api.get("ConfigMap", ns, "gw-config"))
    routes = yaml.safe_load(cm["data"]["config.yaml"])["routes"]
    assert [t["model"] for t in routes[0]["targets"]] == ["real"]
    # Create the missing models: the reference resolves.
    api.apply(model(ns, "ghost"))
    api.apply(model(ns, "phantom"))
    wait_condition(api, "RoutingPolicy", ns, "rp", "ResolvedRefs", "True", timeout=5)
    wait_condition(api, "RoutingPolicy", ns, "rp", "Ready", "True", timeout=5)


def test_gateway_default_route_missing(api: Api, running, ns: str) -> None:
    api.apply(model(ns, "m"))
    api.apply(gateway(ns, "gw", routing={"defaultRoute": "nope", "defaultPolicy": "absent"}))
    gw = wait_condition(api, "AIGateway", ns, "gw", "ResolvedRefs", "False", reason="RoutingPolicyNotFound")
    assert "'nope'" in api.condition(gw, "ResolvedRefs")["message"]
    assert api.condition(gw, "Degraded")["status"] == "True"
    config = yaml.safe_load(api.get("ConfigMap", ns, "gw-config")["data"]["config.yaml"])
    assert config["server"].get("default_model") is None  # the full dump writes unset fields as null


def test_autoscaling_off_and_on(api: Api, running, ns: str) -> None:
    api.apply(model(ns, "m"))
    api.apply(gateway(ns, "gw", autoscaling={"enabled": False}, replicas={"min": 3, "max": 6}))
    wait_for(lambda: (api.get("Deployment", ns, "gw") or {}).get("spec", {}).get("replicas") == 3, what="replicas=min")
    assert api.get("HorizontalPodAutoscaler", ns, "gw") is None
    api.apply(gateway(ns, "gw", replicas={"min": 3, "max": 6}))
    wait_for(lambda: api.get("HorizontalPodAutoscaler", ns, "gw"), timeout=30, what="HPA created")
    dep = api.get("Deployment", ns, "gw")
    # Handed over to the HPA without dropping to the API default of one replica.
    assert dep["spec"]["replicas"] == 3
    ours = [m for m in dep["metadata"]["managedFields"] if m["manager"] == "aimm-operator"]
    assert all("f:replicas" not in m["fieldsV1"].get("f:spec", {}) for m in ours)
    api.apply(gateway(ns, "gw", autoscaling={"enabled": False}, replicas={"min": 3, "max": 6}))
    wait_for(lambda: api.get("HorizontalPodAutoscaler", ns, "gw") is None, timeout=30, what="HPA deleted")


def test_pod_template_passes_restricted_pod_security(api: Api, running, ns: str, control_plane) -> None:
    api.apply(model(ns, "m"))
    api.apply(gateway(ns, "gw"))
    dep = wait_for(lambda: api.get("Deployment", ns, "gw"))
    restricted = f"{ns}-restricted"
    api.create_namespace(restricted, {"pod-security.kubernetes.io/enforce": "restricted"})
    try:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probe", "namespace": restricted},
            "spec": dep["spec"]["template"]["spec"] | {"serviceAccountName": "default"},
        }
        r = api.request("POST", f"/api/v1/namespaces/{restricted}/pods", pod, params={"dryRun": "All"})
        assert r.status_code == 201, r.text
        # The control: the same pod without its securityContext is refused.
        bare = dict(pod["spec"])
        bare.pop("securityContext")
        bare["containers"] = [{k: v for k, v in c.items() if k != "securityContext"} for c in bare["containers"]]
        r = api.request("POST", f"/api/v1/namespaces/{restricted}/pods", pod | {"spec": bare}, params={"dryRun": "All"})
        assert r.status_code == 403 and "restricted" in r.text
    finally:
        api.request("DELETE", f"/api/v1/namespaces/{restricted}")
