"""The longest request stall of a gateway pod while it reloads an AIModel edit, under load.

wrk (C, pinned to the load core) keeps four connections busy on the pod's `GET /health`, which the
same event loop answers as every chat request, for 10 s; once without a reload (the machine's own
noise), once with the kubelet's refresh of the edited config and a SIGHUP 2 s in (a 5,000-model
reload under this load takes over a second). Its longest request is the stall: a reload that held the loop for 40 ms shows as a 40 ms+
request, one that ran beside it does not stand out from the run without it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from aimm_gateway.bench.loadgen import longest_request_ms
from tests.operator.kubeapi import Api
from tests.operator.pods import GatewayPod, sync_config

RUN_S = 10
RELOAD_AT_S = 2.0


def config_hash(pod: GatewayPod) -> str:
    return str(httpx.get(f"{pod.url}/ready", timeout=10).json()["config_hash"])


def reload_stall(api: Api, pod: GatewayPod, edit: Callable[[], None]) -> tuple[float, float, float]:
    """(longest request with the reload of `edit`, longest without a reload, the reload's time from
    the refreshed file to the new config served), in ms. `edit` changes an AIModel and returns once
    the operator's ConfigMap holds the change."""
    without = longest_request_ms(f"{pod.url}/health", RUN_S)
    edit()
    before = config_hash(pod)
    took: list[float] = []

    def reload() -> None:
        time.sleep(RELOAD_AT_S)
        started = time.perf_counter()
        sync_config(api, pod)  # the kubelet refreshes the mounted file; SIGHUP: reload now
        threading.Thread(target=watch, args=(started,), daemon=True).start()

    def watch(started: float) -> None:
        while time.perf_counter() - started < RUN_S - RELOAD_AT_S:
            if config_hash(pod) != before:
                took.append(time.perf_counter() - started)
                return
            time.sleep(0.02)

    with_reload = longest_request_ms(f"{pod.url}/health", RUN_S, reload)
    if not took:
        log = (pod.workdir / "gateway.log").read_text(errors="replace").splitlines()
        said = "\n".join(line[:300] for line in log if "reload" in line or "ERROR" in line or "SIGHUP" in line)
        raise RuntimeError(f"the pod did not serve the edit within the measured run; its log on reloads:\n{said}")
    return with_reload, without, took[0] * 1000
