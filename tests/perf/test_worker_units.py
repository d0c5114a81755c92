"""Pure parts of multi-worker serving: the default worker count and the metrics merge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aimm_gateway.config import ConfigError
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.workers import cpus
from aimm_gateway.workers.metrics_merge import merge_metrics as merge
from aimm_gateway.workers.stats_merge import merge_stats


def _cgroup(tmp_path: Path, proc_line: str, files: dict[str, str]) -> tuple[Path, Path]:
    proc = tmp_path / "cgroup"
    proc.write_text(proc_line + "\n")
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path, proc


def test_cgroup_v2_limit_of_the_process_own_group(tmp_path: Path) -> None:
    root, proc = _cgroup(
        tmp_path, "0::/kubepods/pod1", {"kubepods/pod1/cpu.max": "150000 100000\n", "cpu.max": "max 100000"}
    )
    assert cpus.cgroup_cpu_limit(root, proc) == 1.5


def test_cgroup_v2_unlimited(tmp_path: Path) -> None:
    root, proc = _cgroup(tmp_path, "0::/", {"cpu.max": "max 100000\n"})
    assert cpus.cgroup_cpu_limit(root, proc) is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    root, proc = _cgroup(
        tmp_path,
        "4:cpu,cpuacct:/pod2",
        {"cpu,cpuacct/pod2/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/pod2/cpu.cfs_period_us": "100000\n"},
    )
    assert cpus.cgroup_cpu_limit(root, proc) == 3.0


def test_cgroup_v1_no_quota(tmp_path: Path) -> None:
    root, proc = _cgroup(tmp_path, "4:cpu:/", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert cpus.cgroup_cpu_limit(root, proc) is None


def test_default_workers_rounds_a_fractional_limit_up_within_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIMM_WORKERS", raising=False)
    monkeypatch.setattr(cpus, "usable_cores", lambda: 4)
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 1.5)
    assert cpus.default_workers() == 2
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 16.0)
    assert cpus.default_workers() == 4
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: None)
    assert cpus.default_workers() == 4
    monkeypatch.setenv("AIMM_WORKERS", "3")  # the operator's downward-API value wins
    assert cpus.default_workers() == 3


def test_merge_labels_every_sample_with_its_worker() -> None:
    workers = [GatewayMetrics(), GatewayMetrics()]
    workers[0].series("m", "openai").ok.inc(3)
    workers[1].series("m", "openai").ok.inc(4)
    workers[1].series("m", "openai").duration.observe(0.02)
    text = merge({0: workers[0].render(), 1: workers[1].render()}, {0: 100, 1: 101}).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ok = {
        s.labels["worker"]: s.value
        for s in families["ai_multimodel_requests"].samples
        if s.name == "ai_multimodel_requests_total"
    }
    assert ok == {"0": 3.0, "1": 4.0}
    buckets = [s for s in families["ai_multimodel_request_duration_seconds"].samples if s.name.endswith("_count")]
    assert {s.labels["worker"]: s.value for s in buckets} == {"0": 0.0, "1": 1.0}
    up = {s.labels["worker"]: s.labels["pid"] for s in families["ai_multimodel_worker_up"].samples}
    assert up == {"0": "100", "1": "101"}
    assert text.count("# TYPE ai_multimodel_requests_total counter") == 1


def _stats(hash_: str, requests: int, rpm: float, error_rate: float, p95: float | None, circuit: str) -> bytes:
    model = {
        "requests_total": requests,
        "errors_total": requests // 10,
        "requests_per_minute": rpm,
        "error_rate": error_rate,
        "p95_latency_ms": p95,
        "cost_usd_total": "0.25",
        "circuit_state": circuit,
        "last_error": None,
        "available": circuit != "open",
    }
    return orjson.dumps({"config_hash": hash_, "models": {"m": model}, "budgets": {"team": {"spent_usd": "1.5"}}})


def test_stats_merge_adds_counts_weights_rates_and_keeps_the_worst() -> None:
    merged = orjson.loads(
        merge_stats({0: _stats("h1", 10, 60.0, 0.5, 12.0, "closed"), 1: _stats("h1", 30, 20.0, 0.0, None, "open")}, {})
    )
    m = merged["models"]["m"]
    assert (m["requests_total"], m["errors_total"], m["requests_per_minute"]) == (40, 4, 80.0)
    assert m["error_rate"] == pytest.approx(0.375)  # (0.5*60 + 0*20) / 80
    assert m["p95_latency_ms"] == 12.0 and m["cost_usd_total"] == "0.50"
    assert m["circuit_state"] == "open" and m["available"] is True
    assert merged["budgets"] == {"team": {"spent_usd": "3.0"}}
    assert merged["config_hash"] == "h1"


def test_stats_merge_marks_a_pod_mid_reload() -> None:
    merged = orjson.loads(
        merge_stats({0: _stats("h1", 1, 1.0, 0, 1.0, "closed"), 1: _stats("h2", 1, 1.0, 0, 1.0, "closed")}, {})
    )
    assert merged["config_hash"] == "mixed:h1,h2"


def test_more_than_one_worker_needs_shared_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process state is per process: N workers would each enforce budgets, limits and keys."""
    monkeypatch.setattr(cpus, "usable_cores", lambda: 4)
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: None)
    monkeypatch.delenv("AIMM_WORKERS", raising=False)
    assert cpus.worker_count(None, shared_state=False) == 1  # the core count is only a default
    assert cpus.worker_count(None, shared_state=True) == 4
    monkeypatch.setenv("AIMM_WORKERS", "3")
    assert cpus.worker_count(None, shared_state=False) == 1
    assert cpus.worker_count(None, shared_state=True) == 3
    assert cpus.worker_count(1, shared_state=False) == 1
    assert cpus.worker_count(2, shared_state=True) == 2
    with pytest.raises(ConfigError, match=r"needs shared state.*state\.redis"):
        cpus.worker_count(2, shared_state=False)
    with pytest.raises(ConfigError, match="at least 1"):
        cpus.worker_count(0, shared_state=True)


def test_serve_refuses_workers_without_shared_state(tmp_path: Path) -> None:
    """The command line says what to fix, before binding any port."""
    config = tmp_path / "g.yaml"
    config.write_text("models: [{name: m, provider: mock}]\n")
    aimm = Path(sys.executable).with_name("aimm")
    done = subprocess.run(
        [str(aimm), "gateway", "serve", "--config", str(config), "--workers", "2", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--workers 2 needs shared state" in done.stderr, done.stderr
