"""Response-cache rules (pure): eligibility, Cache-Control, keys, stream assembly."""

from __future__ import annotations

from aimm_gateway.cache.assemble import assemble
from aimm_gateway.cache.keys import cache_key, decide
from aimm_gateway.config import CacheSettings

ON = CacheSettings(enabled=True)
MSG = [{"role": "user", "content": "hi"}]


def test_only_deterministic_or_opted_in_requests() -> None:
    assert decide({"temperature": 0, "messages": MSG}, {}, ON) == (True, True)
    assert decide({"temperature": 0.7, "messages": MSG}, {}, ON) == (False, False)
    assert decide({"messages": MSG}, {}, ON) == (False, False)  # default temperature is not 0
    assert decide({"temperature": 0.7}, {"x-aimm-cache": "force"}, ON) == (True, True)
    assert decide({"temperature": 0, "n": 2}, {}, ON) == (False, False)
    assert decide({"temperature": 0}, {}, CacheSettings()) == (False, False)  # off unless enabled


def test_cache_control() -> None:
    assert decide({"temperature": 0}, {"cache-control": "no-store"}, ON) == (False, False)
    assert decide({"temperature": 0}, {"cache-control": "max-age=0, no-cache"}, ON) == (False, True)


def test_key_normalizes_order_and_ignores_stream() -> None:
    a = cache_key("smart", {"messages": MSG, "temperature": 0, "stream": True, "model": "smart"})
    b = cache_key("smart", {"temperature": 0, "messages": MSG})
    assert a == b
    assert cache_key("other", {"temperature": 0, "messages": MSG}) != b
    assert cache_key("smart", {"temperature": 0, "messages": MSG, "max_tokens": 5}) != b
    assert cache_key("smart", {"temperature": 0, "messages": [{"role": "user", "content": "hi!"}]}) != b


def test_assemble_stream_chunks() -> None:
    chunks = [
        {
            "id": "c1",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}],
        },
        {"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {
            "id": "c1",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f", "arguments": '{"a"'}}]},
                }
            ],
        },
        {
            "id": "c1",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
                    "finish_reason": "tool_calls",
                }
            ],
        },
        {"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
    ]
    answer = assemble(chunks)
    assert answer is not None
    assert answer["id"] == "c1" and answer["object"] == "chat.completion" and answer["model"] == "m"
    choice = answer["choices"][0]
    assert choice["message"]["content"] == "Hello" and choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]
    assert answer["usage"]["total_tokens"] == 5
    assert assemble([{"id": "x", "choices": []}]) is None
