"""The request path as ordered stages (see stages/base.py for the protocol, docs/architecture.md)."""
