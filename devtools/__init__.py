"""Developer tooling: local services for the demo, the tests and the benchmark."""
