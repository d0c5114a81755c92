"""Refuse config reloads that look like accidents (probe finding 1).

An empty file, one cut off mid-write, or one that silently turns authentication off must not
replace a working config. The new file can accept a big change explicitly with
`hardening.reload.allow_shrink: true`; the old config keeps serving otherwise.
"""

from __future__ import annotations

from aimm_gateway.config import GatewayConfig


def reload_refusal(old: GatewayConfig, new: GatewayConfig) -> str | None:
    """Why `new` must not replace `old`, or None when it may."""
    if not new.models and not new.routes and (old.models or old.routes):
        return "the new config has no models and no routes (empty or truncated file?)"
    if new.hardening.reload.allow_shrink:
        return None
    if old.auth.enabled and not new.auth.enabled:
        return "the new config turns authentication off"
    if _had_keys(old) and not _had_keys(new):
        return "the new config removes every API key"
    if old.admin.token is not None and new.admin.token is None:
        return "the new config turns the admin API off"
    share = new.hardening.reload.max_drop_share
    for what, before, after in (
        ("models", {m.name for m in old.models}, {m.name for m in new.models}),
        ("routes", {r.name for r in old.routes}, {r.name for r in new.routes}),
    ):
        dropped = before - after
        if before and len(dropped) / len(before) > share:
            return (
                f"the new config drops {len(dropped)} of {len(before)} {what} ({', '.join(sorted(dropped))}); "
                f"more than hardening.reload.max_drop_share={share}"
            )
    return None


def _had_keys(config: GatewayConfig) -> bool:
    return bool(config.auth.api_keys or config.auth.key_store or config.auth.jwt)
