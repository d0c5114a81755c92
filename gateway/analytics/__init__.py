"""Usage analytics from the store: aggregates, savings, exports, forecast, PDF reports."""
