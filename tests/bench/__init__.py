"""Benchmarks of llm-cockpit against the plain recipes it replaces (``make bench``).

A plain script, not a pytest suite: ``python -m tests.bench.run`` runs every variant one
after the other on the same model, data, steps and seed, prints a table and writes JSON.
See ``tests/bench/README.md`` for what each variant is and how to read the table.
"""
