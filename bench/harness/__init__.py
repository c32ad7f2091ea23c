"""The benchmark harness: replay knowledge-update streams and compare knowd with baselines
(`knowd bench`, bench/cli.py).

* `stream`  – the stream format (ARCHITECTURE.md), question selection and document subsets;
* `scoring` – normalisation, correctness, accuracy breakdowns;
* `systems` – knowd, rag, fact-rag, long-context and weights, all answering through
  graphs/answer.py with the same model and prompt;
* `runner`  – the replay loop, metering, results JSON / Markdown / PNG, error analysis;
* `world`   – seeded synthetic worlds (single-hop and multi-hop conversation streams).
"""
