"""SigV4: the adapter's signatures and the mock's verifier, against independent oracles.

Oracles: botocore's `SigV4Auth.add_auth` on an identical `AWSRequest` at a frozen time; a small
from-scratch SigV4 written here and itself pinned to the AWS test-suite vector (get-vanilla); and
a real boto3 `bedrock-runtime` client, whose signed requests the mock must accept.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch
from urllib.parse import quote, urlsplit

import boto3
import httpx
import pytest
import yarl
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from aimm_gateway.config import ModelConfig
from aimm_gateway.mock import bedrock_wire
from aimm_gateway.mock.engine import MockValidationError
from aimm_gateway.providers.bedrock import BedrockProvider
from aimm_gateway.providers.bedrock_translate import model_path
from aimm_gateway.providers.http import UpstreamPools

FROZEN = datetime(2024, 5, 1, 12, 30, 0)  # botocore works in naive UTC
FROZEN_UTC = FROZEN.replace(tzinfo=UTC)
ENDPOINT = "https://bedrock-runtime.us-east-1.amazonaws.com"
MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
BODY = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'


@pytest.fixture
def frozen() -> Iterator[None]:
    with patch("botocore.auth.get_current_datetime", return_value=FROZEN):
        yield


def provider(monkeypatch: pytest.MonkeyPatch, *, session: bool = False, base_url: str = ENDPOINT) -> BedrockProvider:
    if session:
        access, secret = bedrock_wire.SESSION_ACCESS_KEY_ID, bedrock_wire.SESSION_SECRET_ACCESS_KEY
        monkeypatch.setenv("T_AWS_TOKEN", bedrock_wire.SESSION_TOKEN)
    else:
        access, secret = bedrock_wire.ACCESS_KEY_ID, bedrock_wire.SECRET_ACCESS_KEY
    monkeypatch.setenv("T_AWS_KEY", access)
    monkeypatch.setenv("T_AWS_SECRET", secret)
    settings: dict[str, Any] = {
        "region": "us-east-1",
        "access_key_id": {"env": "T_AWS_KEY"},
        "secret_access_key": {"env": "T_AWS_SECRET"},
    }
    if session:
        settings["session_token"] = {"env": "T_AWS_TOKEN"}
    model = ModelConfig(name="b", provider="bedrock", model=MODEL_ID, base_url=base_url, bedrock=settings)
    assert model.endpoint is not None
    return BedrockProvider(model, model.endpoint, UpstreamPools())


# ---------------------------------------------------------------------------------------------
# An independent SigV4, pinned to AWS's published test vector


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def reference_signature(
    method: str, url: str, headers: dict[str, str], body: bytes, secret: str, region: str, service: str
) -> str:
    """SigV4 from the spec: canonical request, string to sign, derived key. Non-S3 path encoding."""
    parts = urlsplit(url)
    signed = {k.lower(): " ".join(v.split()) for k, v in headers.items() if k.lower() != "authorization"}
    signed["host"] = parts.netloc
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            quote(parts.path or "/", safe="/~"),  # each segment URI-encoded again, as AWS does for non-S3
            parts.query,
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    amz_date = signed["x-amz-date"]
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), amz_date[:8]), region), service), "aws4_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_reference_signer_matches_the_aws_test_suite_vector() -> None:
    # aws-sig-v4-test-suite/get-vanilla
    signature = reference_signature(
        "GET",
        "https://example.amazonaws.com/",
        {"X-Amz-Date": "20150830T123600Z"},
        b"",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "us-east-1",
        "service",
    )
    assert signature == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"


def _signature_of(authorization: str) -> str:
    return authorization.rpartition("Signature=")[2]


# ---------------------------------------------------------------------------------------------
# The adapter's signatures


@pytest.mark.parametrize("session", [False, True])
def test_adapter_signature_equals_botocores_own_signing(
    monkeypatch: pytest.MonkeyPatch, frozen: None, session: bool
) -> None:
    url = ENDPOINT + model_path(MODEL_ID, "converse")
    ours = provider(monkeypatch, session=session).signed_headers(url, BODY, "application/json", {"x-extra": "1"})

    token = bedrock_wire.SESSION_TOKEN if session else None
    access = bedrock_wire.SESSION_ACCESS_KEY_ID if session else bedrock_wire.ACCESS_KEY_ID
    secret = bedrock_wire.SESSION_SECRET_ACCESS_KEY if session else bedrock_wire.SECRET_ACCESS_KEY
    twin = AWSRequest(
        method="POST",
        url=url,
        data=BODY,
        headers={"x-extra": "1", "content-type": "application/json", "accept": "application/json"},
    )
    SigV4Auth(Credentials(access, secret, token), "bedrock", "us-east-1").add_auth(twin)
    assert ours == dict(twin.headers.items())
    assert ours["X-Amz-Date"] == "20240501T123000Z"
    assert ours["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={access}/20240501/us-east-1/bedrock/")
    assert ("X-Amz-Security-Token" in ours) is session


@pytest.mark.parametrize("model_id", [MODEL_ID, ARN])
def test_adapter_signature_equals_the_reference_implementation(
    monkeypatch: pytest.MonkeyPatch, frozen: None, model_id: str
) -> None:
    url = ENDPOINT + model_path(model_id, "converse-stream")
    headers = provider(monkeypatch).signed_headers(url, BODY, "application/vnd.amazon.eventstream", {})
    expected = reference_signature("POST", url, headers, BODY, bedrock_wire.SECRET_ACCESS_KEY, "us-east-1", "bedrock")
    assert _signature_of(headers["Authorization"]) == expected


@pytest.mark.parametrize("transport_path", [lambda u: yarl.URL(u).raw_path, lambda u: httpx.URL(u).raw_path.decode()])
@pytest.mark.parametrize("model_id", [MODEL_ID, ARN])
def test_signed_path_is_the_path_both_pooled_clients_send(
    monkeypatch: pytest.MonkeyPatch, model_id: str, transport_path: Any
) -> None:
    url = "http://127.0.0.1:9" + model_path(model_id, "converse")
    headers = provider(monkeypatch, base_url="http://127.0.0.1:9").signed_headers(url, BODY, "application/json", {})
    sent = {k.lower(): v for k, v in headers.items()} | {"host": "127.0.0.1:9"}
    # aiohttp (yarl) decodes '%3A' to ':'; had the id been signed that way the check below would fail.
    bedrock_wire.verify_signature("POST", transport_path(url).encode(), b"", sent, BODY)


def test_a_fully_escaped_model_id_would_not_survive_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://127.0.0.1:9/model/" + quote(MODEL_ID, safe="") + "/converse"
    headers = provider(monkeypatch, base_url="http://127.0.0.1:9").signed_headers(url, BODY, "application/json", {})
    sent = {k.lower(): v for k, v in headers.items()} | {"host": "127.0.0.1:9"}
    with pytest.raises(MockValidationError):
        bedrock_wire.verify_signature("POST", yarl.URL(url).raw_path.encode(), b"", sent, BODY)


def test_missing_credentials_make_the_model_unusable_without_leaking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_AWS_KEY", "AKIDSECRETVALUE")
    monkeypatch.delenv("T_AWS_SECRET", raising=False)
    model = ModelConfig(
        name="b",
        provider="bedrock",
        bedrock={
            "region": "eu-west-1",
            "access_key_id": {"env": "T_AWS_KEY"},
            "secret_access_key": {"env": "T_AWS_SECRET"},
        },
    )
    assert model.endpoint == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    adapter = BedrockProvider(model, model.endpoint, UpstreamPools())
    reason = adapter.unusable_reason()
    assert reason is not None and "env T_AWS_SECRET" in reason and "AKIDSECRETVALUE" not in reason


# ---------------------------------------------------------------------------------------------
# The mock's verifier, against boto3's own signed requests


def boto3_request(*, access: str, secret: str, token: str | None = None, model_id: str = MODEL_ID) -> dict[str, Any]:
    """What a real boto3 client sends for Converse (captured before it leaves the process)."""
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        aws_session_token=token,
        endpoint_url="http://127.0.0.1:9",
    )
    captured: dict[str, Any] = {}

    class _Sent(Exception):
        pass

    def before_send(request: Any, **_: Any) -> None:
        parts = urlsplit(request.url)
        headers = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        captured.update(path=parts.path.encode(), headers={**headers, "host": parts.netloc}, body=request.body)
        raise _Sent

    client.meta.events.register("before-send.bedrock-runtime.Converse", before_send)
    with pytest.raises(_Sent):
        client.converse(modelId=model_id, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    return captured


def verify(sent: dict[str, Any], **changes: Any) -> None:
    sent = {**sent, **changes}
    bedrock_wire.verify_signature("POST", sent["path"], b"", sent["headers"], sent["body"], now=FROZEN_UTC)


def _error_type(info: pytest.ExceptionInfo[MockValidationError]) -> str:
    assert info.value.status == 403
    return bedrock_wire.BedrockDialect().error_headers(403, info.value.body)["x-amzn-ErrorType"].partition(":")[0]


@pytest.mark.parametrize("model_id", [MODEL_ID, ARN])
def test_mock_accepts_boto3_signatures(frozen: None, model_id: str) -> None:
    sent = boto3_request(access=bedrock_wire.ACCESS_KEY_ID, secret=bedrock_wire.SECRET_ACCESS_KEY, model_id=model_id)
    assert b"%3A" in sent["path"]  # boto3 escapes ':' (the adapter does not): both must verify
    verify(sent)


def test_mock_accepts_boto3_session_credentials_and_checks_the_token(frozen: None) -> None:
    good = boto3_request(
        access=bedrock_wire.SESSION_ACCESS_KEY_ID,
        secret=bedrock_wire.SESSION_SECRET_ACCESS_KEY,
        token=bedrock_wire.SESSION_TOKEN,
    )
    verify(good)
    bad = boto3_request(
        access=bedrock_wire.SESSION_ACCESS_KEY_ID, secret=bedrock_wire.SESSION_SECRET_ACCESS_KEY, token="stolen"
    )
    with pytest.raises(MockValidationError) as info:
        verify(bad)
    assert _error_type(info) == "UnrecognizedClientException"


def test_mock_rejects_tampering_like_aws(frozen: None) -> None:
    sent = boto3_request(access=bedrock_wire.ACCESS_KEY_ID, secret=bedrock_wire.SECRET_ACCESS_KEY)
    cases = {
        "body": ({"body": sent["body"].replace(b"hi", b"ho")}, "InvalidSignatureException"),
        "path": ({"path": sent["path"].replace(b"converse", b"converse-stream")}, "InvalidSignatureException"),
        "header": ({"headers": {**sent["headers"], "content-type": "text/plain"}}, "InvalidSignatureException"),
        "no auth": (
            {"headers": {k: v for k, v in sent["headers"].items() if k != "authorization"}},
            "MissingAuthenticationTokenException",
        ),
    }
    for name, (changes, expected) in cases.items():
        with pytest.raises(MockValidationError) as info:
            verify(sent, **changes)
        assert _error_type(info) == expected, name
        if expected == "InvalidSignatureException":
            assert "signature we calculated does not match" in info.value.body["message"]
    wrong_secret = boto3_request(access=bedrock_wire.ACCESS_KEY_ID, secret="not-the-secret")
    with pytest.raises(MockValidationError) as info:
        verify(wrong_secret)
    assert _error_type(info) == "InvalidSignatureException"
    unknown = boto3_request(access="AKIDUNKNOWN", secret=bedrock_wire.SECRET_ACCESS_KEY)
    with pytest.raises(MockValidationError) as info:
        verify(unknown)
    assert _error_type(info) == "UnrecognizedClientException"


def test_mock_rejects_a_stale_signature(frozen: None) -> None:
    sent = boto3_request(access=bedrock_wire.ACCESS_KEY_ID, secret=bedrock_wire.SECRET_ACCESS_KEY)
    later = FROZEN_UTC.replace(minute=FROZEN_UTC.minute + 6)
    with pytest.raises(MockValidationError) as info:
        bedrock_wire.verify_signature("POST", sent["path"], b"", sent["headers"], sent["body"], now=later)
    assert "Signature expired" in info.value.body["message"]
