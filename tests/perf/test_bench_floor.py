"""The latency bench's floor proxy (`gateway/bench/floor.py`) is a working pass-through, and the
c=1 report splits the target between the floor and the gateway's own work."""

from __future__ import annotations

import httpx

from aimm_gateway.bench.floor import floor_proxy
from aimm_gateway.bench.latency import FLOOR, report
from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from tests.servers import run_asgi_app

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8}


def test_the_floor_relays_a_chat_completion_through_a_real_upstream() -> None:
    with run_asgi_app(create_mock_app("openai", FaultSettings())) as upstream, floor_proxy(upstream) as floor:
        answer = httpx.post(f"{floor}/v1/chat/completions", json=CHAT, timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["model"] == "m" and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert len([k for k in answer.headers if k.startswith("x-floor-")]) == 10


def test_the_report_gives_the_floor_its_share_of_the_target() -> None:
    p50s = {
        "direct": [0.20, 0.22, 0.21],
        "nginx": [0.25, 0.27, 0.26],
        FLOOR: [0.40, 0.42, 0.41],
        "gateway (this tree)": [0.70, 0.72, 0.71],
    }
    text = report(p50s, "aimm bench --latency-only", 3.0, (0.1, 0.2))
    assert "Added p50 over nginx's: **+0.450 ms** (target ≤ +0.3 ms: missed)" in text
    assert "The floor alone (`gateway/bench/floor.py`) is +0.150 ms over nginx's" in text
    assert "leaves 0.150 ms of the target for the gateway's own work; it uses 0.300 ms" in text
