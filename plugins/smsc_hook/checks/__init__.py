"""Data checks on what the warehouse holds: days never loaded (gaps) and month totals
(reconciliation)."""
