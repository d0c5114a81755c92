"""Mock upstream providers: the project's only test doubles.

They speak each provider's real wire format (validation, errors, streaming, usage) and inject
faults on demand. Use them in-process through the pure wire functions, or over HTTP::

    from aimm_gateway.mock.faults import FaultSettings
    from aimm_gateway.mock.server import create_mock_app
    app = create_mock_app("openai", FaultSettings(latency_ms=20))

The package itself imports nothing, so `provider: mock` and the CLI's help load only what they use.
"""
