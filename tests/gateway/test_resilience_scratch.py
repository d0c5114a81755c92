from __future__ import annotations
import time, httpx, pytest
from tests.gateway.conftest import API_KEY, base_config, upstream_model

def test_probe(upstreams, start_gateway):
    a = upstreams("openai")
    b = upstreams("openai")
    cfg = base_config(
        [upstream_model("ma", a, model="alpha"), upstream_model("mb", b, model="bravo")],
        routes=[{"name": "r", "targets": [{"model": "ma", "priority": 0}, {"model": "mb", "priority": 1}],
                 "timeouts": {"first_byte_s": 0.3, "total_s": 2, "stream_idle_s": 5}}],
    )
    gw = start_gateway(cfg)
    c = gw.client()
    # stream events
    with c.stream("POST", "/v1/chat/completions", json={"model": "r", "stream": True, "messages": [{"role": "user", "content": "cut test"}]}) as resp:
        print(resp.status_code, dict(resp.headers))
        print(resp.read().decode())
    a.set_faults(first_byte_delay_ms=1500)
    t = time.monotonic()
    with c.stream("POST", "/v1/chat/completions", json={"model": "r", "stream": True, "messages": [{"role": "user", "content": "slow"}]}) as resp:
        print(resp.status_code, resp.headers.get("x-aimm-model"), resp.headers.get("x-aimm-attempts"))
        body = resp.read().decode()
    print("elapsed", time.monotonic() - t, body[-80:])
    a.set_faults(first_byte_delay_ms=0, cut_stream_after=3)
    with c.stream("POST", "/v1/chat/completions", json={"model": "r", "stream": True, "messages": [{"role": "user", "content": "cut test"}]}) as resp:
        print(resp.status_code, resp.read().decode())
    # client disconnect mid-stream
    a.set_faults(cut_stream_after=None, chunk_interval_ms=200)
    with c.stream("POST", "/v1/chat/completions", json={"model": "r", "stream": True, "messages": [{"role": "user", "content": "bye"}]}) as resp:
        it = resp.iter_raw()
        print(next(it))
    for i in range(20):
        snap = gw.gateway.router.snapshot()
        print(i, snap["ma"].in_flight, snap["ma"].circuit_state)
        if snap["ma"].in_flight == 0: break
        time.sleep(0.25)
