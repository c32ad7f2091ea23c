"""``python -m trainer``: the consolidation process and its small admin commands.

    python -m trainer consolidate --data-dir DIR (--db knowd.sqlite | --facts facts.jsonl) [--config config.yaml] [--set key=value ...]
    python -m trainer adapters list|use VERSION|rollback|clear --data-dir DIR
    python -m trainer report --data-dir DIR [--date YYYY-MM-DD] [--html] [--print]
    python -m trainer runs --data-dir DIR
    python -m trainer config            # every consolidation key with its help

Exit codes: 0 done (shipped, refused or skipped), 1 failed, 2 user error,
3 another run is busy, 143 interrupted (SIGTERM/SIGINT).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trainer.errors import RunBusyError, TrainerError


def _parse_value(v: str) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def load_config(path: str | None, sets: list[str]) -> dict[str, Any]:
    section: dict[str, Any] = {}
    if path:
        import yaml

        doc = yaml.safe_load(Path(path).read_text()) or {}
        section = dict(doc.get("consolidation") or {})
    for s in sets:
        if "=" not in s:
            raise TrainerError(f"--set wants key=value (got {s!r})")
        k, v = s.split("=", 1)
        section[k.strip()] = _parse_value(v)
    return section


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
    c.add_argument("--config", help="config.yaml (its consolidation: section)")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one consolidation key")
    c.add_argument("--no-progress", action="store_true")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    a = sub.add_parser("adapters", help="list / use / rollback adapter versions")
    a.add_argument("action", choices=["list", "use", "rollback", "clear"])
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
            res = consolidate(cfg, open_store(args), args.data_dir, progress=not args.no_progress)
            if args.json:
                print(json.dumps({"run_id": res.run_id, "status": res.status, "reason": res.reason, "adapter_version": res.adapter_version,
                                  "report": str(res.report) if res.report else None, "wall_s": res.wall_s}))
            else:
                print(f"{res.status}: {res.reason}")
                if res.report:
                    print(f"report: {res.report}")
            return 143 if res.status == "interrupted" else 0
        if args.cmd == "adapters":
            from trainer import adapters

            if args.action == "list":
                vs = adapters.list_versions(args.data_dir)
                if not vs:
                    print("no adapters yet")
                for v in vs:
                    print(v.summary())
            elif args.action == "use":
                if not args.version:
                    raise TrainerError("adapters use needs a VERSION (see `adapters list`)")
                print(f"live: {adapters.use_version(args.data_dir, args.version).version}")
            elif args.action == "rollback":
                print(f"live: {adapters.rollback(args.data_dir) or 'base model (no adapter)'}")
            else:
                adapters.clear_live(args.data_dir)
                print("live: base model (no adapter)")
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
