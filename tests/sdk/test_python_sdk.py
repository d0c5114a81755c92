"""The Python SDK, installed from its wheel, against a live gateway (demo config, mock models)."""

from __future__ import annotations

import asyncio
import inspect
import time
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.sdk.harness import ADMIN_TOKEN, API_KEY, FAULTY, LiveGateway


@pytest.fixture
def client(sdk: ModuleType, gateway: LiveGateway) -> Any:
    with sdk.Client(gateway.url, API_KEY, admin_token=ADMIN_TOKEN) as c:
        yield c


def test_query_is_typed_and_complete(sdk: ModuleType, client: Any) -> None:
    result = client.query("Name three colours", model="mock-fast", max_tokens=64)
    assert isinstance(result, sdk.QueryResult)
    assert result.model == "mock-fast" and result.provider == "mock"
    assert result.text and result.finish_reason in ("stop", "length")
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens > 0
    assert result.usage.total_cost > 0 and result.latency_ms > 0 and result.request_id


def test_query_without_model_uses_the_default_route(client: Any) -> None:
    # demo.yaml: default route `smart`; real providers have no key here, so a mock model serves.
    assert client.query("hello").model in {"mock-smart", "mock-fast"}


def test_query_multiple_compares(sdk: ModuleType, client: Any) -> None:
    out = client.query_multiple("Compare me", ["mock-fast", "mock-smart", "no-such-model"])
    assert isinstance(out, sdk.MultipleResult)
    ok = [r for r in out.results if isinstance(r, sdk.QueryResult)]
    failed = [r for r in out.results if isinstance(r, sdk.QueryFailure)]
    assert {r.model for r in ok} == {"mock-fast", "mock-smart"}
    assert len(failed) == 1 and isinstance(failed[0].error, sdk.NotFoundError) and failed[0].error.status == 404
    assert out.comparison is not None and out.comparison.succeeded == 2 and out.comparison.failed == 1
    assert 0 <= out.comparison.agreement_score <= 1
    assert out.comparison.fastest_model in {"mock-fast", "mock-smart"}
    assert client.query_multiple("again", ["mock-fast"], compare=False).comparison is None


def test_stream_yields_typed_chunks_then_usage(sdk: ModuleType, client: Any) -> None:
    prompt = "Stream a reply please"
    with client.stream(prompt, model="mock-fast") as stream:
        chunks = list(stream)
    pieces = [c for c in chunks if isinstance(c, sdk.ContentChunk)]
    assert len(pieces) > 1 and isinstance(chunks[-1], sdk.FinalChunk)
    assert stream.final is chunks[-1] and stream.final.model == "mock-fast"
    assert stream.final.usage.completion_tokens > 0 and stream.request_id == stream.final.request_id
    assert stream.text == "".join(p.text for p in pieces) == client.query(prompt, model="mock-fast").text


def test_stream_error_mid_stream_raises_after_content(sdk: ModuleType, client: Any, upstream: LiveGateway) -> None:
    upstream.upstream.set_faults(stream_error_after=2, stream_chunks=8)
    got: list[Any] = []
    with pytest.raises(sdk.APIError) as info:
        for chunk in client.stream("break me", model=FAULTY):
            got.append(chunk)
    assert got and all(isinstance(c, sdk.ContentChunk) for c in got)
    assert info.value.during_stream and info.value.request_id
    assert info.value.message and info.value.status >= 500


def test_stream_cancel_mid_way_frees_the_gateway(sdk: ModuleType, client: Any, upstream: LiveGateway) -> None:
    upstream.upstream.set_faults(stream_chunks=30, chunk_interval_ms=200)
    stream = client.stream("a slow answer", model=FAULTY)
    started = time.monotonic()
    first = next(iter(stream))
    assert isinstance(first, sdk.ContentChunk)
    stream.close()
    assert time.monotonic() - started < 3  # the full answer would take ~6 s
    assert stream.final is None and len(stream.text) < len(client.query("a slow answer", model="mock-fast").text)
    assert client.query("still serving", model=FAULTY).model == FAULTY


def test_batch_keeps_order_and_reports_failures(sdk: ModuleType, client: Any) -> None:
    out = client.batch(["first", {"prompt": "second", "model": "mock-smart"}, {"prompt": "third", "model": "nope"}])
    assert isinstance(out, sdk.BatchResult) and (out.succeeded, out.failed) == (2, 1)
    assert [type(r).__name__ for r in out.results] == ["QueryResult", "QueryResult", "QueryFailure"]
    assert out.results[1].model == "mock-smart"
    assert isinstance(out.results[2].error, sdk.NotFoundError) and out.results[2].error.code == "model_not_found"
    assert client.batch(["x", "y"], model="mock-fast").results[1].model == "mock-fast"


def test_models_metrics_stats_health(sdk: ModuleType, client: Any) -> None:
    listed = client.models()
    assert isinstance(listed, sdk.ModelList)
    fast = listed.get("mock-fast")
    assert fast is not None and fast.health == "healthy" and "streaming" in fast.capabilities
    assert listed.get("gpt-4o-mini").health == "unavailable"  # no OpenAI key in the environment
    assert {r.name for r in listed.routes} >= {"smart", "cheap"}
    client.query("count me", model="mock-fast")
    assert client.metrics().models["mock-fast"]["requests_total"] >= 1
    stats = client.stats()
    assert stats.config_hash and stats.models["mock-fast"]["requests_total"] >= 1
    assert client.health()["status"] == "ok" and client.ready()["status"] == "ready"


def test_feedback(sdk: ModuleType, client: Any) -> None:
    fb = client.feedback("mock-fast", 0.9)
    assert isinstance(fb, sdk.Feedback) and fb.accepted and fb.score == 0.9
    with pytest.raises(sdk.NotFoundError) as info:
        client.feedback("no-such-model", 0.5)
    assert info.value.status == 404 and info.value.code == "model_not_found" and info.value.param == "model"
    with pytest.raises(sdk.InvalidRequestError) as bad:
        client.feedback("mock-fast", 7)
    assert bad.value.status == 400 and bad.value.request_id  # the SDK's own id, adopted by the gateway


def test_admin_add_disable_enable_update(sdk: ModuleType, gateway: LiveGateway) -> None:
    with sdk.Client(gateway.url, API_KEY, admin_token=ADMIN_TOKEN, max_retries=0) as client:
        added = client.add_model({"name": "sdk-added", "provider": "mock", "pricing": {"input_per_1k": "0.001"}})
        assert isinstance(added, sdk.ModelStatus) and added.source == "runtime" and added.enabled
        assert client.query("hi", model="sdk-added").model == "sdk-added"
        assert not client.disable_model("sdk-added").enabled
        with pytest.raises(sdk.ServiceUnavailableError) as off:
            client.query("hi", model="sdk-added")
        assert off.value.status == 503 and off.value.code == "no_usable_model"
        assert client.enable_model("sdk-added").enabled
        assert not client.update_model("sdk-added", enabled=False).enabled
        status = {m.name: m for m in client.models_status()}
        assert not status["sdk-added"].enabled and status["mock-fast"].source == "config"
        assert client.set_model_weight("mock-smart", 3).weight == 3.0
        listed = client.models()
        assert {m.name: m.weight for m in listed.models}["mock-smart"] == 3.0
        weighted = [dict(zip(r.targets, r.weights, strict=True)) for r in listed.routes if "mock-smart" in r.targets]
        assert weighted and all(w["mock-smart"] == 3.0 for w in weighted)
        assert client.set_model_weight("mock-smart", 1).weight == 1.0
        with pytest.raises(sdk.InvalidRequestError) as negative:
            client.set_model_weight("mock-smart", -1)
        assert negative.value.param == "weight"
        with pytest.raises(sdk.NotFoundError):
            client.enable_model("missing-model")
        with pytest.raises(sdk.InvalidRequestError):
            client.add_model({"name": "broken", "provider": "no-such-provider"})


def test_auth_errors(sdk: ModuleType, gateway: LiveGateway) -> None:
    with sdk.Client(gateway.url, "wrong-key") as bad, pytest.raises(sdk.AuthenticationError) as info:
        bad.query("hi")
    assert info.value.status == 401 and info.value.code == "invalid_api_key"
    with sdk.Client(gateway.url, API_KEY) as no_admin, pytest.raises(sdk.PermissionDeniedError) as denied:
        no_admin.models_status()  # the API key is not the admin token
    assert denied.value.status == 403


class Counting(httpx.HTTPTransport):
    """A real HTTP transport that records each response's status (and can react to it)."""

    def __init__(self, on_response: Any = None) -> None:
        super().__init__()
        self.statuses: list[int] = []
        self._on_response = on_response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        if self._on_response is not None:
            self._on_response(response)
        return response


def test_429_retry_after_is_honoured(sdk: ModuleType, gateway: LiveGateway, upstream: LiveGateway) -> None:
    upstream.upstream.set_faults(fail_rate=1, status_code=429, retry_after_ms=200)
    with sdk.Client(gateway.url, API_KEY, max_retries=0) as once, pytest.raises(sdk.RateLimitError) as info:
        once.query("limited", model=FAULTY)
    err = info.value
    assert err.status == 429 and err.code == "rate_limited" and err.request_id
    assert err.retry_after is not None and err.retry_after >= 0.2

    # The upstream recovers as soon as the gateway has answered 429: the SDK's retry succeeds.
    transport = Counting(lambda response: response.status_code == 429 and upstream.upstream.reset())
    with sdk.Client(gateway.url, API_KEY, max_retries=2, transport=transport) as patient:
        started = time.monotonic()
        result = patient.query("limited", model=FAULTY)
        waited = time.monotonic() - started
    assert result.model == FAULTY and transport.statuses == [429, 200]
    assert waited >= err.retry_after  # the SDK slept for the gateway's Retry-After


def test_non_idempotent_call_is_not_retried_after_the_body_was_sent(
    sdk: ModuleType, gateway: LiveGateway, upstream: LiveGateway
) -> None:
    upstream.upstream.set_faults(fail_rate=1, status_code=500)
    transport = Counting()
    with sdk.Client(gateway.url, API_KEY, max_retries=2, transport=transport) as client:
        with pytest.raises(sdk.UpstreamError) as info:
            client.query("may have run", model=FAULTY)
        assert info.value.status == 502 and transport.statuses == [502]  # a POST that may have run: once
        transport.statuses.clear()
        client.feedback("mock-fast", 0.5)  # unaffected calls still pass
    told_transport = Counting()
    told = sdk.Client(gateway.url, API_KEY, max_retries=2, retry_non_idempotent=True, transport=told_transport)
    with told, pytest.raises(sdk.UpstreamError):
        told.query("may have run", model=FAULTY)
    assert told_transport.statuses == [502, 502, 502]  # told to: 1 + 2 retries


def test_timeout(sdk: ModuleType, gateway: LiveGateway, upstream: LiveGateway) -> None:
    upstream.upstream.set_faults(latency_ms=3000)
    with sdk.Client(gateway.url, API_KEY, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(sdk.APITimeoutError):
            client.query("slow", model=FAULTY)
        assert time.monotonic() - started < 2  # a POST that timed out after sending is not retried


def test_settings_from_environment(sdk: ModuleType, gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in gateway.env().items():
        monkeypatch.setenv(name, value)
    with sdk.Client() as client:
        assert client.base_url == gateway.url
        assert client.query("env", model="mock-fast").text
        assert client.models_status()  # AIMM_ADMIN_TOKEN
    monkeypatch.setenv("AIMM_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with sdk.Client(max_retries=0) as nowhere, pytest.raises(sdk.APIConnectionError):
        nowhere.health()


async def test_async_client(sdk: ModuleType, gateway: LiveGateway, upstream: LiveGateway) -> None:
    async with sdk.AsyncClient(gateway.url, API_KEY, admin_token=ADMIN_TOKEN) as client:
        assert (await client.query("async hi", model="mock-fast")).model == "mock-fast"
        multi = await client.query_multiple("async compare", ["mock-fast", "mock-smart"])
        assert multi.comparison.succeeded == 2
        chunks = [c async for c in client.stream("async stream", model="mock-fast")]
        assert isinstance(chunks[-1], sdk.FinalChunk) and len(chunks) > 2
        assert (await client.batch(["a", "b"])).succeeded == 2
        assert (await client.models()).get("mock-smart") is not None
        assert (await client.feedback("mock-smart", 1.0)).accepted
        assert (await client.stats()).models and (await client.metrics()).raw
        assert any(m.name == FAULTY for m in await client.models_status())
        upstream.upstream.set_faults(stream_error_after=1)
        with pytest.raises(sdk.APIError) as info:
            async for _ in client.stream("break", model=FAULTY):
                pass
        assert info.value.during_stream


async def test_async_stream_cancel(sdk: ModuleType, gateway: LiveGateway, upstream: LiveGateway) -> None:
    upstream.upstream.set_faults(stream_chunks=30, chunk_interval_ms=200)
    async with sdk.AsyncClient(gateway.url, API_KEY) as client:
        started = time.monotonic()
        stream = client.stream("slow", model=FAULTY)
        async for chunk in stream:
            assert isinstance(chunk, sdk.ContentChunk)
            break
        await stream.aclose()
        assert time.monotonic() - started < 3  # the full answer would take ~6 s
        assert stream.final is None and (await client.query("next", model=FAULTY)).model == FAULTY


def _has(gateway: LiveGateway, method: str, path: str) -> bool:
    return method.lower() in gateway.openapi()["paths"].get(path, {})


@pytest.mark.filterwarnings("error::DeprecationWarning")  # websockets >= 17.1 warns about a bare connect()
def test_live_feed(sdk: ModuleType, gateway: LiveGateway) -> None:
    """With /api/v1/ws on the gateway: events arrive. Until it lands: a clean APIError."""
    client = sdk.Client(gateway.url, API_KEY)
    if not _has(gateway, "GET", "/api/v1/ws"):
        # Starlette refuses a WebSocket upgrade to an unknown path with 403.
        with pytest.raises(sdk.APIError) as info, client.subscribe(["metrics"]):
            pass
        assert info.value.status in (403, 404)
        return
    with client.subscribe(["metrics"]) as feed:
        event = feed.recv(timeout=5)
        assert event.channel == "control" and event.data["type"] == "hello"  # who you are, your channels
        event = feed.recv(timeout=5)
    assert isinstance(event, sdk.FeedEvent) and event.channel == "metrics"
    with pytest.raises(sdk.AuthenticationError), sdk.Client(gateway.url, "wrong").subscribe(["metrics"]):
        pass


def test_analytics_and_budgets(sdk: ModuleType, client: Any) -> None:
    client.query("for the books", model="mock-smart")
    usage = client.usage(group_by="model")
    assert usage["group_by"] == "model" and "mock-smart" in {g["model"] for g in usage["groups"]}
    assert int(usage["totals"]["requests"]) >= 1
    top = client.top_consumers(by="key", limit=3)
    assert top["by"] == "key" and top["top"][0]["key"] == "demo" and len(top["top"]) <= 3
    assert client.report().startswith(b"%PDF")
    assert "demo-daily" in {b["name"] for b in client.budgets()["budgets"]}
    with pytest.raises(sdk.InvalidRequestError) as bad:
        client.usage(group_by="planet")
    assert bad.value.param == "group_by"


def test_keys(sdk: ModuleType, client: Any, gateway: LiveGateway) -> None:
    """The key store's admin API: called for real once the gateway has it, a clean 404 until then."""
    if not _has(gateway, "GET", "/admin/keys"):
        with pytest.raises(sdk.NotFoundError):
            client.list_keys()
        return
    created = client.create_key("sdk-test-key", role="viewer")
    key_id = created.get("id") or created.get("key_id")
    assert key_id and client.rotate_key(key_id) and isinstance(client.list_keys(), dict)
    client.revoke_key(key_id)


def test_audit(sdk: ModuleType, client: Any) -> None:
    """The audit trail, newest first and checked: a key created now is its newest key.create."""
    created = client.create_key("sdk-audit-key", role="viewer")
    page = client.audit(action="key.create", limit=1)
    assert page["source"] == "store" and page["verified"] is True
    newest = page["data"][0]
    assert newest["action"] == "key.create" and newest["target"].endswith("(sdk-audit-key)") and newest["verified"]
    client.create_key("sdk-audit-key-2", role="viewer")
    two = client.audit(action="key.create", limit=1)
    assert two["data"][0]["target"].endswith("(sdk-audit-key-2)") and two["has_more"]
    older = client.audit(action="key.create", limit=1, cursor=two["next_cursor"])
    assert older["data"][0]["hash"] == newest["hash"]
    assert client.audit(since=newest["ts"], action="key.create")["data"][-1]["hash"] == newest["hash"]
    with pytest.raises(sdk.InvalidRequestError) as bad:
        client.audit(limit=1000)
    assert bad.value.param == "limit"
    client.revoke_key(created["id"])


def _eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_sync_and_async_clients_have_one_surface(sdk: ModuleType) -> None:
    """Each method is written once (`_ops`) for both clients: same parameters and docs; on the
    async client the request methods are coroutine functions, `stream`/`subscribe` are not."""
    sync, aio = sdk.Client("http://127.0.0.1:9", max_retries=0), sdk.AsyncClient("http://127.0.0.1:9")
    for name in sdk.OPERATIONS:
        s, a = getattr(sync, name), getattr(aio, name)
        assert list(inspect.signature(s).parameters) == list(inspect.signature(a).parameters), name
        assert s.__doc__, name
        if name not in ("stream", "subscribe"):
            assert s.__doc__ == a.__doc__, name
        assert inspect.iscoroutinefunction(a) == (name not in ("stream", "subscribe")), name
        assert not inspect.iscoroutinefunction(s), name
    assert "prompt" in inspect.signature(sync.query).parameters
    assert inspect.signature(sync.stream).return_annotation == "Stream"
    with pytest.raises(sdk.APIConnectionError):  # the unbound form calls the same method (port 9: nothing)
        sdk.Client.query(sync, "x")
    sync.close()
    asyncio.run(aio.close())
