"""The security parts one gateway process holds across reloads, handed to stages as one object."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from aimm_gateway.config import AuditSettings, ConfigError, GuardSettings
from aimm_gateway.security.audit import AuditLog
from aimm_gateway.security.detectors import Detectors
from aimm_gateway.security.metrics import SecurityMetrics


def build_audit(settings: AuditSettings) -> AuditLog:
    if settings.sink == "file":
        if not settings.path:
            raise ConfigError("hardening.audit.path: required with sink: file")
        return AuditLog.to_file(Path(settings.path))
    return AuditLog(sys.stdout if settings.sink == "stdout" else None)


@dataclass
class SecurityServices:
    audit: AuditLog
    metrics: SecurityMetrics
    _detectors: tuple[GuardSettings, Detectors] | None = field(default=None, repr=False)

    def detectors(self, settings: GuardSettings) -> Detectors:
        """Compiled once per distinct guard config (rules are data in the config)."""
        if self._detectors is None or self._detectors[0] != settings:
            compiled = Detectors(
                extra_rules=[(r.id, r.pattern, r.score) for r in settings.extra_rules],
                extra_pii=[(p.id, p.pattern) for p in settings.extra_pii],
            )
            self._detectors = (settings, compiled)
        return self._detectors[1]
