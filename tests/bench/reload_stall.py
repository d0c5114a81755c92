"""The longest request stall of a gateway pod while it reloads an AIModel edit, under load.

wrk (C, pinned to the load core) keeps four connections busy on the pod's `GET /health`, which the
same event loop answers as every chat request, for a few seconds; once without a reload (the
machine's own noise), once with the kubelet's refresh of the edited config and a SIGHUP a second
in. Its longest request is the stall: a reload that held the loop for 40 ms shows as a 40 ms+
request, one that ran beside it does not stand out from the run without it.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable

import httpx

from aimm_gateway.bench.procs import LOAD_CPU, pinned
from tests.operator.kubeapi import Api
from tests.operator.pods import GatewayPod, sync_config

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
RUN_S = 4
RELOAD_AT_S = 1.5


def longest_request_ms(url: str, during: Callable[[], None] | None = None) -> float:
    """wrk's longest request (ms) over `RUN_S` seconds; `during` runs `RELOAD_AT_S` into it."""
    wrk = subprocess.Popen(
        pinned(LOAD_CPU, ["wrk", "-t1", "-c4", f"-d{RUN_S}s", "--latency", url]), stdout=subprocess.PIPE, text=True
    )
    if during is not None:
        time.sleep(RELOAD_AT_S)
        during()
    out, _ = wrk.communicate(timeout=RUN_S + 30)
    m = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s", out, re.M)
    if m is None or wrk.returncode != 0:
        raise RuntimeError(f"wrk failed:\n{out}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def config_hash(pod: GatewayPod) -> str:
    return str(httpx.get(f"{pod.url}/ready", timeout=10).json()["config_hash"])


def reload_stall(api: Api, pod: GatewayPod, edit: Callable[[], None]) -> tuple[float, float]:
    """(longest request with the reload of `edit`, longest without a reload), in ms. `edit` changes
    an AIModel and returns once the operator's ConfigMap holds the change."""
    without = longest_request_ms(f"{pod.url}/health")
    edit()
    before = config_hash(pod)
    reloading = threading.Event()

    def reload() -> None:
        sync_config(api, pod)  # the kubelet refreshes the mounted file; SIGHUP: reload now
        reloading.set()

    with_reload = longest_request_ms(f"{pod.url}/health", reload)
    if not reloading.is_set() or config_hash(pod) == before:
        log = (pod.workdir / "gateway.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the pod did not reload the edit within the measured run; its log ends:\n{log}")
    return with_reload, without
