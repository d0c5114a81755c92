"""Which requests the cache may answer, and the key of a request (pure).

The key is a digest of the normalized request: the model or route asked for and every field
that changes the answer (messages, tools, sampling parameters), with JSON keys sorted. `stream`
and `stream_options` are left out: an answer cached from a stream can be replayed as a plain
answer and the other way round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from aimm_gateway.config import CacheSettings

_IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "fallback_model"})


def cache_key(requested: str, body: Mapping[str, Any]) -> str:
    fields = {k: v for k, v in body.items() if k not in _IGNORED and k != "model"}
    blob = orjson.dumps({"m": requested, "b": fields}, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return "resp:" + hashlib.sha256(blob).hexdigest()


def directives(cache_control: str | None) -> frozenset[str]:
    if not cache_control:
        return frozenset()
    return frozenset(part.split("=", 1)[0].strip().lower() for part in cache_control.split(","))


def decide(body: Mapping[str, Any], headers: Mapping[str, str], settings: CacheSettings) -> tuple[bool, bool]:
    """(may look up, may store) for this request.

    Cacheable when deterministic (`temperature: 0`) or opted in (`x-aimm-cache: force`).
    `Cache-Control: no-store` turns both off; `no-cache` skips the lookup but stores the fresh answer.
    """
    if not settings.enabled:
        return False, False
    forced = headers.get(settings.opt_in_header, "").strip().lower() == "force"
    temperature = body.get("temperature")
    deterministic = temperature is not None and float(temperature) == 0.0 and int(body.get("n") or 1) == 1
    if not (forced or deterministic):
        return False, False
    cc = directives(headers.get("cache-control"))
    if "no-store" in cc:
        return False, False
    return "no-cache" not in cc, True
