"""The operator's memory debug hook on the real API server (issue 15): off by default, and with
AIMM_OPERATOR_MEMTRACE set every SIGUSR1 writes what holds the RSS, then what a burst left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aimm_gateway.bench.procs import stop
from tests.operator.conftest import REPO
from tests.operator.kubeapi import Api, wait_condition, wait_for
from tests.operator.manifests import gateway, model


def start(kubeconfig: Path, ns: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A second operator, watching only `ns` (the session's operator watches every namespace and
    stays out of nothing, so this one must not reach into other tests' namespaces)."""
    return subprocess.Popen(
        [sys.executable, "-m", "aimm_operator", f"--namespace={ns}", f"--kubeconfig={kubeconfig}"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        cwd=REPO,
    )


@pytest.fixture()
def traced(operator_kubeconfig: Path, ns: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    out = tmp_path / "memtrace"
    proc = start(
        operator_kubeconfig,
        ns,
        tmp_path / "operator.log",
        {"AIMM_OPERATOR_MEMTRACE": str(out), "AIMM_OPERATOR_MEMTRACE_FRAMES": "4"},
    )
    try:
        yield proc, out
    finally:
        stop(proc, 15, 5)


def dump(proc: subprocess.Popen[bytes], out: Path, k: int) -> str:
    proc.send_signal(signal.SIGUSR1)
    path = out / f"memtrace-{k}.txt"
    wait_for(lambda: path.exists() and path.read_text().endswith("\n"), 60, what=str(path))
    assert proc.poll() is None, "SIGUSR1 must not stop the operator"
    return path.read_text()


def test_sigusr1_dumps_what_holds_the_memory_and_what_a_burst_added(
    api: Api, traced: tuple[subprocess.Popen[bytes], Path], ns: str
) -> None:
    proc, out = traced
    wait_for(out.exists, 60, what="the memtrace hook installed")  # made when SIGUSR1 is handled
    first = dump(proc, out, 1)
    for part in ("RSS", "malloc_trim(0)", "glibc malloc", "pymalloc", "kopf object streams"):
        assert part in first, part
    assert "## top 40 by lineno (held)" in first  # the first dump: everything traced so far
    api.apply(gateway(ns, "gw"))
    for i in range(5):
        api.apply(model(ns, f"m{i}"))
    for i in range(5):
        wait_condition(api, "AIModel", ns, f"m{i}", "Ready", "True")
    second = dump(proc, out, 2)
    assert "## top 40 by traceback (growth)" in second  # since the previous dump
    assert "aimm_operator" in second or "operator/" in second  # our own allocation sites are named
    assert "## live objects by type" in second


def test_without_the_variable_there_is_no_hook(operator_kubeconfig: Path, ns: str, tmp_path: Path) -> None:
    log = tmp_path / "operator.log"
    proc = start(operator_kubeconfig, ns, log, {})
    try:
        wait_for(lambda: "Activity 'build_registry.<locals>.startup' succeeded" in log.read_text(), 60)
        assert "memtrace" not in log.read_text()
        assert not any(tmp_path.glob("**/memtrace-*.txt"))
    finally:
        proc.terminate()
        proc.wait(15)
