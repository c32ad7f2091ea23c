"""knowd's benchmarks: the harness (`bench.harness`, run by `knowd bench`) and scripts that print figures.

Not part of the product package (pyproject ships agent, graphs, connectors, stores, trainer):
the harness may import any layer, nothing in the product imports it except `knowd bench`,
lazily (agent/cli/bench.py).
"""
