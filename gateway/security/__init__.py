"""Identities, roles, key store, JWT, secrets at rest, audit, guards (see docs/security.md)."""
