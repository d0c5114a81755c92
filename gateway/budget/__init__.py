"""Budgets enforced: periods, scopes, reserve-then-settle against the state layer, thresholds, actions."""
