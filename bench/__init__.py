"""knowd's benchmarks: the harness (`bench.harness`, run by `knowd bench`) and scripts that print figures.

Not part of the product package (pyproject ships agent, graphs, connectors, stores, trainer):
bench/ is a distribution of its own, knowd-bench (bench/pyproject.toml), whose `knowd bench`
commands (bench/cli.py) reach the `knowd` group through the `knowd.commands` entry points.
The harness may import any layer; nothing in the product imports it.
"""
