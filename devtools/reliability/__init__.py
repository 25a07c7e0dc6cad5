"""Reliability suite and soak: the pipeline under faults, load and bad input."""
