"""Shared state across replicas: counters, budget reservations, cache, pub/sub (in-process or Redis)."""
