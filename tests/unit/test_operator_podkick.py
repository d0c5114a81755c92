"""The pods a config refresh annotates: the Pod targets of the gateway Service's EndpointSlices."""

from __future__ import annotations

from aimm_operator.podkick import pod_names


def test_pod_targets_of_every_slice_ready_or_not_each_once() -> None:
    slices = [
        {
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": "b"}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": False}, "targetRef": {"kind": "Pod", "name": "a"}},
                {"addresses": ["10.0.0.3"]},  # no target (a manually managed slice)
                {"addresses": ["10.0.0.4"], "targetRef": {"kind": "Node", "name": "n1"}},
            ]
        },
        {"endpoints": [{"addresses": ["fd00::1"], "targetRef": {"kind": "Pod", "name": "a"}}]},  # dual stack
        {"endpoints": None},
    ]
    assert pod_names(slices) == ["a", "b"]
    assert pod_names([]) == []
