"""Request telemetry beyond the metrics registry: OpenTelemetry traces and the JSON access log.

Both are built once per process (`Telemetry`), switched per config snapshot, and cost nothing
on the request path when off: the telemetry stage holds None instead of a tracer or a log.
"""
