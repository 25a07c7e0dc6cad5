"""The warehouse: the writer (atomic, revisioned days), migrations, engine and call ledger.

The only layer that speaks SQL. ``sql/`` here is the repository's migrations directory
(a symlink in a checkout, the files themselves in the wheel).
"""
