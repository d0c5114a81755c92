"""Inbound protocols: other APIs' request/response shapes, translated to and from the canonical model.

Pure translation only (no I/O): the handlers in `aimm_gateway.api` call these, then the same
`ChatPipeline` the OpenAI-compatible endpoints use, so any configured model serves any protocol.
"""
