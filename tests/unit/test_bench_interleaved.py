"""The bench's Redis command count: what a client sent, not what ran inside a script."""

from __future__ import annotations

import hashlib

from aimm_gateway.bench.interleaved import _script_names, parse_monitor_line
from aimm_gateway.state import redis_scripts


def test_monitor_lines_name_client_commands_and_scripts() -> None:
    scripts = _script_names()
    admit = hashlib.sha1(redis_scripts.ADMIT.encode()).hexdigest()
    assert scripts[admit] == "ADMIT"
    sent = f'+1764512345.123456 [0 127.0.0.1:51234] "EVALSHA" "{admit}" "7" "4"'
    assert parse_monitor_line(sent, scripts) == "EVALSHA ADMIT"
    assert parse_monitor_line('+1764512345.2 [0 127.0.0.1:51234] "publish" "aimm:live" "x"', scripts) == "PUBLISH"
    assert parse_monitor_line('+1764512345.3 [0 lua] "GET" "aimm:w:rl:g:r:60000:1"', scripts) is None
    assert parse_monitor_line("+OK", scripts) is None
    unknown = '+1.0 [0 127.0.0.1:1] "EVALSHA" "0123456789abcdef0123456789abcdef01234567" "0"'
    assert parse_monitor_line(unknown, scripts) == "EVALSHA 01234567"
