"""Request telemetry beyond the metrics registry: OpenTelemetry traces and the JSON access log.

Both are built once per process (`Telemetry`), switched per config snapshot, and cost nothing
on the request path when off: the telemetry stage holds None instead of a tracer or a log.
"""

# Where the request's telemetry state rides in `RequestContext.scratch` (plain strings, so the
# request path can look them up without importing the OpenTelemetry SDK).
TRACE_KEY = "telemetry.trace"  # the RequestTrace, present only when tracing is on
INCOMING_KEY = "telemetry.incoming"  # the client's traceparent/tracestate headers
