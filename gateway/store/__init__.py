"""The usage store: one row per request and per attempt, SQLite (embedded) or PostgreSQL, batched writes."""
