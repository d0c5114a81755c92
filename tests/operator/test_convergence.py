"""Order-independent convergence on the real API server (issue 15): models applied before their
gateway go straight to Ready, without a NotSelected status in between; a model no gateway selects
still says so once the namespace is quiet."""

from __future__ import annotations

from tests.operator.conftest import OperatorProcess
from tests.operator.kubeapi import Api, ConditionWatch, wait_condition
from tests.operator.manifests import gateway, model


def test_models_applied_before_their_gateway_never_show_not_selected(
    api: Api, running: OperatorProcess, ns: str
) -> None:
    api.apply(model(ns, "early"))  # the operator is up and watching this namespace (not starting)
    wait_condition(api, "AIModel", ns, "early", "Ready", "False", reason="NotSelected")
    names = [f"m{i}" for i in range(30)]
    with ConditionWatch(api, "AIModel", ns) as watch:
        for name in names:
            api.apply(model(ns, name))
        api.apply(gateway(ns, "gw"))
        for name in names:
            wait_condition(api, "AIModel", ns, name, "Ready", "True", reason="Accepted")
    assert {name: watch.reasons.get(name) for name in names} == {name: ["Accepted"] for name in names}


def test_a_model_no_gateway_selects_says_so_once_the_namespace_is_quiet(
    api: Api, running: OperatorProcess, ns: str
) -> None:
    api.apply(model(ns, "alone"))
    m = wait_condition(api, "AIModel", ns, "alone", "Ready", "False", reason="NotSelected")
    assert m["status"]["gateways"] == []
