"""The live feed: one hub per process that fans events out to WebSocket subscribers.

`hub.py` holds the subscribers and their bounded queues, `feed.py` the ticker that publishes
metrics snapshots, model changes and alerts, `events.py` the pure event builders.
"""
