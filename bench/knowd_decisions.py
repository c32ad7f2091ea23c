"""What knowd's ingest decided during a benchmark run (for the error analysis in docs/benchmarks.md).

    .venv/bin/python bench/knowd_decisions.py bench/out/world-multi-s1 bench/out/world-multi-s1.jsonl

Prints the operations knowd logged (extract, reinforce, make_false, retire, rewrite,
...), and, for generated worlds, the decisions taken on the introduction chunks:
nothing changes while people introduce themselves, so every make_false there is
a wrong decision.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness.stream import read_stream  # noqa: E402
from stores.sqlite import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the --out folder of a `knowd bench` run with --system knowd")
    ap.add_argument("stream", type=Path, help="the stream that run replayed")
    args = ap.parse_args()
    store = Store(args.out / "work" / "knowd" / "knowd.sqlite")
    stream = read_stream(args.stream)
    ops = store.operations(limit=10**6)
    print("operations:", dict(Counter(o.op for o in ops)))
    facts = store.count_facts()
    print(f"facts: {facts['total']} ({facts['current']} true at the end)")
    if stream.questions and all(d.source.startswith("world-") for d in stream.documents):
        first_q = stream.questions[0].time
        intro = {d.id for d in stream.documents if d.time < first_q}
        during = Counter(o.op for o in ops if o.doc_id in intro)
        later = Counter(o.op for o in ops if o.doc_id not in intro)
        print(f"introductions ({len(intro)} chunks, nothing changes): {dict(during)}")
        print(f"transitions ({len(stream.documents) - len(intro)} chunks): {dict(later)}")
    store.close()


if __name__ == "__main__":
    main()
