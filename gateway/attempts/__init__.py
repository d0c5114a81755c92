"""The parts of the attempt loop that are not the loop: planning, openers, per-attempt bookkeeping.

`pipeline.py` owns the loop itself (order, retries, fallbacks, hedges); these modules hold what
it calls: `planning` turns a request into an ordered list of targets, `openers` is the one place
plain and streamed calls differ, `ledger` records each attempt (breakers, metrics, live stats).
"""
