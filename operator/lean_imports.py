"""Import kopf without the official Kubernetes client.

kopf imports `kubernetes` whenever it is installed, only to recognise the client's model objects
in its adoption helpers (`kopf.adopt` and friends), which the operator never calls with them. That
import is ~52 MB of RSS for the operator's whole life (the client's generated model classes), a
quarter of its memory budget at 5,000 models. The package stays installed: the credentials loader
runs it in a child process (aimm_operator.credentials).
"""

from __future__ import annotations

import sys


def import_kopf_without_kubernetes_client() -> None:
    """Import kopf with `kubernetes` hidden for the duration (kopf's optional import then falls back
    to its stand-ins). Does nothing if either is already imported: there is nothing left to save."""
    if "kopf" in sys.modules or "kubernetes" in sys.modules:
        return
    sys.modules["kubernetes"] = None  # type: ignore[assignment]  # makes `import kubernetes` raise ImportError
    try:
        import kopf  # noqa: F401
    finally:
        del sys.modules["kubernetes"]
