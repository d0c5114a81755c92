"""VertexProvider without the network: access-token caching and refresh, credentials, URLs, bodies.

`service_account_info` (a freshly generated RSA key, `cryptography`) is shared with the mock and
HTTP tests, which point its token_uri at the mock's `/token`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError

from aimm_gateway.canonical import validate_chat, validate_embeddings
from aimm_gateway.config import ModelConfig, Timeouts, parse_config
from aimm_gateway.errors import InvalidRequest, UpstreamError
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.providers.vertex import (
    ANTHROPIC_VERTEX_VERSION,
    GoogleAccessTokens,
    VertexProvider,
    anthropic_vertex_body,
)
from aimm_gateway.runtime import build_runtime
from tests.unit.test_anthropic_adapter import assert_anthropic_request

TIMEOUTS = Timeouts(connect_s=1, first_byte_s=1, total_s=1, stream_idle_s=1)


@cache
def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)  # once per test process: slow-ish


def service_account_info(token_uri: str, key_id: str = "test-key-1") -> tuple[dict[str, Any], str]:
    """A service-account JSON with a fresh RSA key, and that key's public PEM (to register with the mock)."""
    key = _private_key()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    info = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": key_id,
        "private_key": private_pem,
        "client_email": "gateway@p.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    return info, public_pem


def vertex_model(publisher: str = "google", credentials: dict[str, str] | None = None, **extra: Any) -> ModelConfig:
    vertex: dict[str, Any] = {"project": "proj", "location": "europe-west4", "publisher": publisher}
    if credentials is not None:
        vertex["credentials"] = credentials
    model = "claude-sonnet-4-5@20250929" if publisher == "anthropic" else "gemini-2.5-flash"
    return ModelConfig.model_validate({"name": "v", "provider": "vertex", "model": model, "vertex": vertex, **extra})


@pytest.fixture
async def pools() -> AsyncIterator[UpstreamPools]:
    pools = UpstreamPools()
    yield pools
    await pools.close()


# ---------------------------------------------------------------------------------------------
# Access tokens


class FakeCredentials:
    """google-auth's credential surface the token cache uses: refresh(request), token, expiry."""

    def __init__(self, lifetime_s: float = 3600, delay_s: float = 0.0, fail: bool = False) -> None:
        self.lifetime_s = lifetime_s
        self.delay_s = delay_s
        self.fail = fail
        self.refreshes = 0
        self.threads: list[int] = []
        self.token: str | None = None
        self.expiry: datetime | None = None

    def refresh(self, request: Any) -> None:
        self.threads.append(threading.get_ident())
        time.sleep(self.delay_s)  # blocking, like google-auth's HTTP call
        if self.fail:
            raise RefreshError("invalid_grant: Invalid JWT Signature.")
        self.refreshes += 1
        self.token = f"tok-{self.refreshes}"
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=self.lifetime_s)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_token_is_cached_until_it_nears_expiry() -> None:
    creds, clock = FakeCredentials(lifetime_s=3600), Clock()
    tokens = GoogleAccessTokens(lambda: creds, margin_s=300, clock=clock)
    assert await tokens.token() == "tok-1"
    clock.now += 3000  # 600 s left: still fresh
    assert await tokens.token() == "tok-1"
    clock.now += 301  # inside the margin: refresh before it dies
    assert await tokens.token() == "tok-2"
    assert creds.refreshes == 2


async def test_concurrent_requests_share_one_refresh_off_the_event_loop() -> None:
    creds = FakeCredentials(delay_s=0.05)
    tokens = GoogleAccessTokens(lambda: creds)
    loop_thread = threading.get_ident()
    results = await asyncio.gather(*(tokens.token() for _ in range(20)))
    assert set(results) == {"tok-1"}
    assert creds.refreshes == 1
    assert creds.threads and loop_thread not in creds.threads


async def test_a_short_lived_token_is_refreshed_every_time() -> None:
    creds = FakeCredentials(lifetime_s=60)  # shorter than the 300 s margin
    tokens = GoogleAccessTokens(lambda: creds)
    assert [await tokens.token() for _ in range(3)] == ["tok-1", "tok-2", "tok-3"]


async def test_refresh_failure_is_an_upstream_auth_error_and_is_retried() -> None:
    creds = FakeCredentials(fail=True)
    tokens = GoogleAccessTokens(lambda: creds)
    with pytest.raises(UpstreamError) as err:
        await tokens.token()
    assert (err.value.status, err.value.kind) == (502, "upstream_auth")
    assert "invalid_grant" in err.value.message
    creds.fail = False
    assert await tokens.token() == "tok-1"  # a failure is not cached


async def test_credentials_load_lazily_in_a_worker_thread() -> None:
    loaded: list[int] = []
    creds = FakeCredentials()

    def load() -> FakeCredentials:
        loaded.append(threading.get_ident())
        return creds

    tokens = GoogleAccessTokens(load)
    assert loaded == []
    await tokens.token()
    await tokens.token()
    assert len(loaded) == 1 and loaded[0] != threading.get_ident()


# ---------------------------------------------------------------------------------------------
# Credentials and usability


def test_service_account_file_makes_a_usable_provider(tmp_path: Path, pools: UpstreamPools) -> None:
    info, _ = service_account_info("http://127.0.0.1:1/token")
    path = tmp_path / "sa.json"
    path.write_bytes(orjson.dumps(info))
    provider = VertexProvider(vertex_model(credentials={"file": str(path)}), "http://127.0.0.1:1", pools)
    assert provider.unusable_reason() is None


def test_missing_credentials_make_the_model_unusable(tmp_path: Path, pools: UpstreamPools) -> None:
    ref = {"file": str(tmp_path / "absent.json")}
    provider = VertexProvider(vertex_model(credentials=ref), "http://127.0.0.1:1", pools)
    reason = provider.unusable_reason()
    assert reason is not None and "absent.json" in reason and "not set" in reason


def test_broken_credentials_say_why_without_echoing_the_key(
    tmp_path: Path, pools: UpstreamPools, monkeypatch: pytest.MonkeyPatch
) -> None:
    info, _ = service_account_info("http://127.0.0.1:1/token")
    broken = {k: v for k, v in info.items() if k != "client_email"}
    monkeypatch.setenv("AIMM_TEST_VERTEX_SA", orjson.dumps(broken).decode())
    provider = VertexProvider(vertex_model(credentials={"env": "AIMM_TEST_VERTEX_SA"}), "http://127.0.0.1:1", pools)
    reason = provider.unusable_reason()
    assert reason is not None and "client_email" in reason
    assert "PRIVATE KEY" not in reason and info["private_key"][40:80] not in reason
    monkeypatch.setenv("AIMM_TEST_VERTEX_SA", "{not json")
    provider = VertexProvider(vertex_model(credentials={"env": "AIMM_TEST_VERTEX_SA"}), "http://127.0.0.1:1", pools)
    assert "not a service-account key" in (provider.unusable_reason() or "")


def test_application_default_credentials_are_assumed_usable(pools: UpstreamPools) -> None:
    # ADC may need the metadata server, so it is resolved on first use, not at config load.
    assert VertexProvider(vertex_model(), "http://127.0.0.1:1", pools).unusable_reason() is None


def test_runtime_lists_a_vertex_model_without_credentials_as_unusable(tmp_path: Path) -> None:
    ref = {"file": str(tmp_path / "absent.json")}
    config = parse_config({"models": [vertex_model(credentials=ref).model_dump(mode="json", exclude_none=True)]})
    runtime = build_runtime(config, UpstreamPools())
    assert "absent.json" in runtime.unusable["v"]


async def test_unusable_provider_refuses_calls_without_network(tmp_path: Path, pools: UpstreamPools) -> None:
    model = vertex_model(credentials={"file": str(tmp_path / "absent.json")})
    provider = VertexProvider(model, "http://127.0.0.1:1", pools)
    body = {"model": "v", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(UpstreamError) as err:
        await provider.complete(UpstreamCall(model, validate_chat(body), body, None, TIMEOUTS, "r"))
    assert err.value.kind == "upstream_auth"


# ---------------------------------------------------------------------------------------------
# URLs and bodies


def test_urls_for_google_and_anthropic_publishers(pools: UpstreamPools) -> None:
    google = VertexProvider(vertex_model(), vertex_model().endpoint or "", pools)
    root = "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj/locations/europe-west4/publishers"
    assert google._complete_url == f"{root}/google/models/gemini-2.5-flash:generateContent"
    assert google._stream_url == f"{root}/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert google._predict_url == f"{root}/google/models/gemini-2.5-flash:predict"
    claude = VertexProvider(vertex_model("anthropic"), vertex_model().endpoint or "", pools)
    assert claude._complete_url == f"{root}/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    assert claude._stream_url == f"{root}/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"


def test_global_location_uses_the_global_host() -> None:
    model = ModelConfig.model_validate(
        {"name": "v", "provider": "vertex", "vertex": {"project": "p", "location": "global"}}
    )
    assert model.endpoint == "https://aiplatform.googleapis.com"


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_on_vertex_body(stream: bool) -> None:
    model = vertex_model("anthropic")
    body = {"model": "v", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    out = anthropic_vertex_body(UpstreamCall(model, validate_chat(body), body, None, TIMEOUTS, "r"), stream=stream)
    assert "model" not in out
    assert out["anthropic_version"] == ANTHROPIC_VERTEX_VERSION == "vertex-2023-10-16"
    # Put the model back and the rest is exactly an Anthropic Messages body.
    rest = {k: v for k, v in out.items() if k != "anthropic_version"}
    assert_anthropic_request({**rest, "model": model.upstream_model}, stream=stream)


async def test_anthropic_publisher_has_no_embeddings(pools: UpstreamPools) -> None:
    model = vertex_model("anthropic")
    provider = VertexProvider(model, "http://127.0.0.1:1", pools)
    body = {"model": "v", "input": "x"}
    with pytest.raises(InvalidRequest, match="embeddings"):
        await provider.embed(EmbeddingCall(model, validate_embeddings(body), body, None, TIMEOUTS, "r"))
