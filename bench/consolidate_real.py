"""A real consolidation on the bundled model, from a JSONL of facts; prints the before/after table.

    .venv/bin/python bench/consolidate_real.py                      # 10 CLARK-News facts, small CPU preset
    .venv/bin/python bench/consolidate_real.py --n 2 --set max_steps=3   # a quick smoke run
    .venv/bin/python bench/consolidate_real.py --set preset=gpu          # on a CUDA machine

Each fact of bench/clark10.jsonl was written by hand from one document of
../shared/data/clark-news-dev.jsonl (its doc_id). The data dir defaults to
bench/out/<time>/ (ignored by git); the run's report path is printed at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--facts", default=str(ROOT / "bench" / "clark10.jsonl"))
    ap.add_argument("--n", type=int, default=0, help="use only the first N facts")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--models-from", default=None, help="a data dir whose models/ (GGUF + converted checkpoint) to reuse")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()

    from agent.models import ensure_gguf
    from trainer.config import TrainerConfig, parse_sets
    from trainer.report import metrics_table
    from trainer.run import consolidate
    from trainer.selection import MemoryStore, facts_from_jsonl

    facts = facts_from_jsonl(args.facts)
    if args.n:
        facts = facts[: args.n]
    dd = Path(args.data_dir or ROOT / "bench" / "out" / datetime.now().strftime("%Y%m%d-%H%M%S"))
    dd.mkdir(parents=True, exist_ok=True)
    if args.models_from and not (dd / "models").exists():
        (dd / "models").symlink_to(Path(args.models_from).resolve() / "models")
    cfg = TrainerConfig.from_dict(parse_sets(args.set))
    t0 = time.monotonic()
    res = consolidate(cfg, MemoryStore(facts), dd, progress=not args.no_progress, base_gguf=lambda: ensure_gguf(dd))
    wall = time.monotonic() - t0
    rec = json.loads((res.run_dir / "run.json").read_text())
    print()
    print(f"status: {res.status} — {res.reason}")
    print(f"adapter version: {res.adapter_version}; wall time {wall:.0f} s (run {rec.get('wall_s')} s); phases {rec.get('phase_times')}")
    if rec.get("train"):
        print(f"training: {rec['train']}")
    if rec.get("data"):
        print(f"data: {rec['data']}")
    if rec.get("metrics"):
        rows = metrics_table(rec["metrics"])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"report: {res.report}")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
