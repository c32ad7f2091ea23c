"""``python -m trainer``: the consolidation process and its small admin commands.

    python -m trainer consolidate --data-dir DIR (--db knowd.sqlite | --facts facts.jsonl) --base-gguf MODEL.gguf [--config config.yaml] [--set key=value ...]
    python -m trainer adapters list|use VERSION|rollback|clear --data-dir DIR
    python -m trainer report --data-dir DIR [--date YYYY-MM-DD] [--html] [--print]
    python -m trainer runs --data-dir DIR
    python -m trainer config            # every consolidation key with its help

Exit codes: 0 done (shipped, refused or skipped), 1 failed, 2 user error,
3 another run is busy, 143 interrupted (SIGTERM/SIGINT).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from trainer.adapters import ACTIONS
from trainer.config import parse_sets
from trainer.errors import RunBusyError, TrainerError


def load_config(path: str | None, sets: list[str]) -> dict[str, Any]:
    """The ``consolidation:`` section of config.yaml at `path` (if any), with ``--set`` overrides.
    (knowd reads the whole file with agent/config.py; this is the trainer used on its own.)"""
    section: dict[str, Any] = {}
    if path:
        import yaml

        doc = yaml.safe_load(Path(path).read_text()) or {}
        section = dict(doc.get("consolidation") or {})
    return {**section, **parse_sets(sets)}


def open_store(args: argparse.Namespace) -> Any:
    if args.facts:
        from trainer.selection import MemoryStore, facts_from_jsonl

        return MemoryStore(facts_from_jsonl(args.facts))
    if args.db:
        from stores.sqlite import Store  # the lead's store

        return Store(args.db)
    raise TrainerError("consolidate needs --db PATH (the fact store) or --facts FILE.jsonl")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer", description="knowd consolidation")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("consolidate", help="run one consolidation now")
    c.add_argument("--data-dir", required=True)
    c.add_argument("--db", help="SQLite fact store")
    c.add_argument("--facts", help="JSONL of facts instead of a store (benchmarks)")
    c.add_argument("--base-gguf", help="the base model's GGUF (knowd keeps the bundled one in DATA_DIR/models/)")
    c.add_argument("--config", help="config.yaml (its consolidation: section)")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one consolidation key")
    c.add_argument("--no-progress", action="store_true")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    a = sub.add_parser("adapters", help="list / use / rollback adapter versions")
    a.add_argument("action", choices=ACTIONS)
    a.add_argument("version", nargs="?")
    a.add_argument("--data-dir", required=True)
    r = sub.add_parser("report", help="path (or text) of the latest consolidation report")
    r.add_argument("--data-dir", required=True)
    r.add_argument("--date")
    r.add_argument("--html", action="store_true")
    r.add_argument("--print", action="store_true", help="print the Markdown instead of its path")
    rs = sub.add_parser("runs", help="list consolidation runs")
    rs.add_argument("--data-dir", required=True)
    sub.add_parser("config", help="describe every consolidation key")
    args = ap.parse_args(argv)

    try:
        if args.cmd == "config":
            from trainer.config import describe

            print(describe())
            return 0
        if args.cmd == "consolidate":
            import logging

            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
            from trainer.config import TrainerConfig
            from trainer.run import consolidate

            cfg = TrainerConfig.from_dict(load_config(args.config, args.set))
            gguf = args.base_gguf
            res = consolidate(cfg, open_store(args), args.data_dir, progress=not args.no_progress,
                              base_gguf=(lambda: gguf) if gguf else None)
            print("\n".join(res.lines(args.json)))
            return res.exit_code
        if args.cmd == "adapters":
            from trainer import adapters

            print("\n".join(adapters.run_action(args.data_dir, args.action, args.version)))
            return 0
        if args.cmd == "report":
            from trainer.report import latest_report

            p = latest_report(args.data_dir, args.date, html_=args.html)
            print(p.read_text() if args.print else p)
            return 0
        if args.cmd == "runs":
            from trainer.runs import list_runs

            for rec in list_runs(args.data_dir):
                print(f"{rec['id']}  {rec.get('status', '?'):11s} {rec.get('adapter_version') or '-':6s} {rec.get('reason', '')[:100]}")
            return 0
    except RunBusyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except TrainerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
