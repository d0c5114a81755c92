"""The `/metrics` merge of N workers' 1,000-model expositions: parse + re-render (before) vs text-level.

Each worker's exposition is a `GatewayMetrics` with 1,000 models' series touched once (~8 MB,
~80,000 lines); the merge runs on the event loop of the worker answering the scrape. Runs of the
two merges alternate (A/B interleaved) and both outputs are checked byte-identical.

    nice -n 19 .venv/bin/python -m tests.bench.metrics_merge [--models 1000] [--workers 2,4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.workers.metrics_merge import merge_metrics
from tests.unit.test_metrics_merge import reference_merge

Merge = Callable[[dict[int, bytes], dict[int, int]], bytes]


def exposition(models: int, worker: int) -> bytes:
    m = GatewayMetrics()
    for i in range(models):
        name = f"model-{i:04d}"
        s = m.series(name, "openai")
        s.ok.inc(worker + 1)
        s.duration.observe(0.2)
        s.ttft.observe(0.05)
        s.inter_chunk.observe(0.01)
        s.input_tokens.inc(10)
        s.output_tokens.inc(5)
        s.cost.inc(0.001)
        r = m.request_series("openai", name, 200)
        r.requests.inc()
        r.duration.observe(0.2)
    return m.exposition("")[0]


def _ms(merge: Merge, expositions: dict[int, bytes], pids: dict[int, int]) -> tuple[float, bytes]:
    started = time.perf_counter()
    out = merge(expositions, pids)
    return (time.perf_counter() - started) * 1000, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--workers", default="2,4")
    parser.add_argument("--rounds", type=int, default=3, help="old runs per worker count (new runs: 7 per old)")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    texts = {i: exposition(args.models, i) for i in range(max(counts))}
    lines = texts[0].count(b"\n")
    print(f"{args.models} models: {len(texts[0]):,} bytes, {lines:,} lines a worker")
    for n in counts:
        expositions, pids = {i: texts[i] for i in range(n)}, {i: 1000 + i for i in range(n)}
        old: list[float] = []
        new: list[float] = []
        for _ in range(args.rounds):
            ms, before = _ms(reference_merge, expositions, pids)
            old.append(ms)
            for _ in range(7):
                ms, after = _ms(merge_metrics, expositions, pids)
                new.append(ms)
            assert after == before, "the text-level merge differs from parse + re-render"
        o, w = statistics.median(old), statistics.median(new)
        print(
            f"{n} workers, {sum(map(len, expositions.values())):,} bytes in, {len(after):,} out: "
            f"before median {o:.0f} ms (min {min(old):.0f}), text-level median {w:.1f} ms (min {min(new):.1f}), "
            f"x{o / w:.0f}; identical bytes"
        )
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
