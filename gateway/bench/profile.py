"""`aimm bench --flame OUT.svg`: a py-spy flame graph of one gateway worker under wrk load.

The same set-up as the benchmark (mock upstream on CPU 1, one worker pinned to CPU 0, wrk at
concurrency 16 on the pass-through path); py-spy samples the worker's on-CPU stacks (idle
excluded), writing the SVG and the collapsed stacks next to it (`.txt`, for diffing by function).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path

from aimm_gateway.bench.loadgen import wrk
from aimm_gateway.bench.runner import HEADERS, THIS_CLIENT, body, gateway
from aimm_gateway.bench.stream_bench import start_mocks

SECONDS = 20


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("aimm bench --flame needs py-spy: pip install py-spy")
    return found


def record(pid: int, out: Path, fmt: str, seconds: int) -> None:
    cmd = [py_spy(), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200"]
    subprocess.run([*cmd, "--format", fmt, "--output", str(out)], check=True, capture_output=True)


def flame(out: Path, stream: bool = False) -> None:
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        mocks = start_mocks(stack, paced_chunks=8, paced_interval_ms=0)
        url, pid = stack.enter_context(gateway("flame", mocks, Path(tmp), client=THIS_CLIENT))
        payload = body(model="long", stream=True) if stream else body()
        endpoint = f"{url}/v1/chat/completions"
        wrk(endpoint, payload, HEADERS, 16, 3.0)  # warm-up
        load = threading.Thread(target=wrk, args=(endpoint, payload, HEADERS, 16, 2 * SECONDS + 10))
        load.start()
        out.parent.mkdir(parents=True, exist_ok=True)
        record(pid, out, "flamegraph", SECONDS)
        record(pid, out.with_suffix(".txt"), "raw", SECONDS)
        load.join()
