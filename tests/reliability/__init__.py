"""Reliability and security suite: faults, load, bad input, secrets (marker ``reliability``)."""
