"""A real Prometheus (built by hack/prometheus.sh) on a loopback port, for tests.

with run_prometheus(tmp_path, targets=["127.0.0.1:8080"], rules=group) as prom:
    prom.query("up")
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from aimm_gateway.bench.procs import free_port, process
from tests.observability.prombin import bin_dir


@dataclass
class Prometheus:
    url: str
    log: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = resp.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """(labels, [(time, value)]) per series; values as floats (NaN where a quantile has no data)."""
        params = {"query": expr, "start": start, "end": end, "step": step}
        body = httpx.get(f"{self.url}/api/v1/query_range", params=params, timeout=30).json()
        assert body.get("status") == "success", f"{expr}: {body}"
        return [(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in body["data"]["result"]]

    def alerts(self, name: str, state: str = "firing") -> list[dict[str, Any]]:
        data = httpx.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return [a for a in data if a["labels"].get("alertname") == name and a["state"] == state]

    def wait_for(self, what: str, check: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; log: {self.log}")
            time.sleep(0.25)


@contextmanager
def run_prometheus(
    workdir: Path, targets: list[str], rules: dict[str, Any] | None = None, interval: str = "1s"
) -> Iterator[Prometheus]:
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": "aimm", "static_configs": [{"targets": targets}]}],
    }
    if rules is not None:
        (workdir / "rules.yaml").write_text(yaml.safe_dump({"groups": [rules]}, sort_keys=False))
        config["rule_files"] = [str(workdir / "rules.yaml")]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    args = [
        str(bin_dir() / "prometheus"),
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--enable-feature=exemplar-storage",
        "--log.level=warn",
    ]
    prom = Prometheus(f"http://127.0.0.1:{port}", workdir / "prometheus.log")
    with process(args, f"{prom.url}/-/ready", log=prom.log):  # /-/ready: 503 until it is
        yield prom
