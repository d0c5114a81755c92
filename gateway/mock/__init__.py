"""Mock upstream providers: the project's only test doubles.

They speak each provider's real wire format (validation, errors, streaming, usage) and inject
faults on demand. Use them in-process through the pure wire functions, or over HTTP::

    from aimm_gateway.mock import FaultSettings, create_mock_app
    app = create_mock_app("openai", FaultSettings(latency_ms=20))
"""

from __future__ import annotations

from .engine import (
    MockChoice,
    MockInput,
    MockMessage,
    MockOutput,
    MockTool,
    MockToolCall,
    MockValidationError,
    embed,
    generate,
)
from .faults import FaultInjector, FaultSettings, MockStats, parse_fault_header
from .server import create_mock_app, run_mock_provider

__all__ = [
    "FaultInjector",
    "FaultSettings",
    "MockChoice",
    "MockInput",
    "MockMessage",
    "MockOutput",
    "MockStats",
    "MockTool",
    "MockToolCall",
    "MockValidationError",
    "create_mock_app",
    "embed",
    "generate",
    "parse_fault_header",
    "run_mock_provider",
]
