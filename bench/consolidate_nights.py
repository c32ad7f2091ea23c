"""Three consolidation nights in a row on a real SQLite store, then closed-book chat.

    .venv/bin/python bench/consolidate_nights.py --data-dir bench/out/nights
    .venv/bin/python bench/consolidate_nights.py --nights 1 --set max_steps=3   # a smoke run

bench/clark30.jsonl holds 30 facts written by hand from ../shared/data/clark-news-dev.jsonl
(each line names its document and its night) and one retraction: on night 2 a
document makes a night-1 fact false (Nadhim Zahawi left Education for the Treasury).
Each night the facts of that night enter the store as ingest would write them (the
document, the fact, a history entry at the document's time), then the nightly job
runs exactly as the daemon runs it (`trainer.run.consolidate` on the store,
continuing from the live adapter, replaying earlier facts).

Printed per night: the gate's verdict, the metrics of the new adapter as served,
and the night-1 facts' efficacy (their own sentence), so retention across nights is
read off one table. Then, with the last adapter live, `knowd chat --closed-book`
(the real CLI, a subprocess) is asked the held-out questions of the consolidated
facts and unrelated questions, once with the adapter routed and once with
`llm.adapter: off`: the unrelated answers must be byte-identical.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "clark-news-dev.jsonl"
UNRELATED = [  # not among the trainer's locality probes (general_probes: 40)
    "What is the capital of Russia?", "What is the capital of China?", "Who wrote Macbeth?",
    "What is the boiling point of water in Celsius?", "Which planet is closest to the Sun?",
    "What animal says moo?", "Which country is home to the kangaroo?", "What is the capital of India?",
    "Who discovered penicillin?", "What is the largest mammal?",
]


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def load_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def add_night(store: Any, lines: list[dict[str, Any]], docs: dict[str, dict[str, Any]]) -> None:
    """Write one night's facts as ingest would: document, fact, history entry."""
    from stores.types import Document

    for d in lines:
        src = docs.get(d["doc_id"], {})
        store.put_document(Document(
            id=d["doc_id"], text=src.get("text", d["text"]), source="clark-news", url=src.get("url"),
            published_at=_t(src["time"]) if src.get("time") else _t(d["time"]), title=src.get("title"),
        ), status="done")
    with store.transaction() as c:
        for d in lines:
            truth = bool(d.get("truth", True))
            fid = store.insert_fact(c, d["text"], d.get("subject", ""), d.get("relation", ""), d.get("object", ""))
            store.add_history(c, fid, _t(d["time"]), truth, d["doc_id"], "extract" if truth else "make_false", None)


def own_sentence_results(run_dir: Path) -> dict[str, bool]:
    """Fact text -> whether the adapter as served completed its own sentence (efficacy,
    replay or retention question), from the run's eval.json."""
    ev = json.loads((run_dir / "eval.json").read_text())
    data = json.loads((run_dir / "data.json").read_text())
    text = {fd["fact_id"]: fd["text"] for fd in data["facts"]}
    out: dict[str, bool] = {}
    for a in (ev.get("after") or {}).get("answers", []):
        if a["group"] in ("efficacy", "replay"):
            out[text.get(a["fact_id"], a["fact_id"])] = a["correct"]
    ret = (ev.get("retention") or {}).get("after") or {}
    for a in ret.get("answers", []):
        out[a["question"] + " " + a["gold"] + "."] = a["correct"]
    return out


def chat_closed_book(data_dir: Path, questions: list[str], adapter: str) -> list[str]:
    """Ask `knowd chat --closed-book` (a subprocess, the real CLI) each question; return the answers."""
    cfg = data_dir / f"chat-{adapter}.yaml"
    cfg.write_text(f"data_dir: {data_dir}\nllm:\n  adapter: {adapter}\n  n_threads: 2\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(cfg), "chat", "--closed-book"],
        input="".join(q + "\n" for q in questions) + "/quit\n", capture_output=True, text=True, env=env, cwd=ROOT, timeout=900,
    )
    if p.returncode != 0:
        raise SystemExit(f"knowd chat failed ({p.returncode}): {p.stderr[-2000:]}")
    answers = []
    for ln in p.stdout.splitlines():
        if "knowd> " in ln:
            answers.append(ln.split("knowd> ", 1)[1].strip())
    if len(answers) != len(questions):
        raise SystemExit(f"expected {len(questions)} answers, got {len(answers)}:\n{p.stdout[-3000:]}")
    return answers


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--facts", default=str(ROOT / "bench" / "clark30.jsonl"))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--models-from", default=None, help="a data dir whose models/ (GGUF + converted checkpoint) to reuse")
    ap.add_argument("--nights", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--no-chat", action="store_true", help="skip the closed-book chat check")
    ap.add_argument("--chat-only", action="store_true", help="only the chat check, on --data-dir's nights (nights.json kept)")
    args = ap.parse_args()

    from agent.models import ensure_gguf
    from stores.sqlite import Store
    from trainer.prompts.answer import matches
    from trainer.config import TrainerConfig, parse_sets
    from trainer.run import consolidate

    lines = load_lines(Path(args.facts))
    want = {d["doc_id"] for d in lines}
    docs = {}
    if SHARED.is_file():
        for ln in SHARED.read_text(encoding="utf-8").splitlines():
            d = json.loads(ln)
            if d.get("type") == "document" and d.get("id") in want:
                docs[d["id"]] = d
    dd = Path(args.data_dir or ROOT / "bench" / "out" / ("nights-" + datetime.now().strftime("%Y%m%d-%H%M%S"))).resolve()
    dd.mkdir(parents=True, exist_ok=True)
    if args.models_from and not (dd / "models").exists():
        (dd / "models").symlink_to(Path(args.models_from).resolve() / "models")
    store = Store(dd / "knowd.sqlite")
    cfg = TrainerConfig.from_dict(parse_sets(args.set))
    # night-1 facts still true at the end: their retention across nights (the one made
    # false on night 2 is measured as "asserted" instead)
    retracted = {d["text"] for d in lines if not d.get("truth", True)}
    night1 = [d["text"] for d in lines if d.get("night") == 1 and d.get("truth", True) and d["text"] not in retracted]
    summary: list[dict[str, Any]] = []
    last_run: Path | None = None
    if args.chat_only:  # the nights ran before: their summary, the last run
        prev = json.loads((dd / "nights.json").read_text()) if (dd / "nights.json").is_file() else {}
        summary = prev.get("nights") or [{"status": "shipped"}]
        last_run = sorted((dd / "consolidation" / "runs").iterdir())[-1]
    for night in range(1, 0 if args.chat_only else args.nights + 1):
        add_night(store, [d for d in lines if d.get("night") == night], docs)
        t0 = time.monotonic()
        res = consolidate(cfg, store, dd, progress=False, base_gguf=lambda: ensure_gguf(dd))
        wall = time.monotonic() - t0
        rec = json.loads((res.run_dir / "run.json").read_text())
        after = (rec.get("metrics") or {}).get("after") or {}
        own = own_sentence_results(res.run_dir) if (res.run_dir / "eval.json").is_file() else {}
        n1 = [own[t] for t in night1 if t in own]
        row = {
            "night": night, "status": res.status, "reason": res.reason, "version": res.adapter_version, "wall_s": round(wall),
            "train": {k: (rec.get("train") or {}).get(k) for k in ("steps", "stopped", "seconds")},
            "facts": {k: sum(1 for f in rec.get("facts", []) if f["kind"] == k) for k in ("new", "retracted", "replay")},
            "metrics": {k: after.get(k) for k in ("efficacy", "paraphrase", "portability", "replay", "retention", "asserted",
                                                   "locality", "arithmetic", "routed_probes")},
            "base_arithmetic": ((rec.get("metrics") or {}).get("base") or {}).get("arithmetic"),
            "teacher": {k: ((rec.get("metrics") or {}).get("teacher") or {}).get(k) for k in ("efficacy", "paraphrase", "portability")},
            "router": (rec.get("metrics") or {}).get("router"),
            "night1_efficacy": sum(n1) / len(n1) if n1 else None, "night1_n": len(n1),
            "report": str(res.report) if res.report else None,
        }
        summary.append(row)
        last_run = res.run_dir
        print(json.dumps(row), flush=True)

    out: dict[str, Any] = {"nights": summary}
    if args.chat_only:
        out.update({k: v for k, v in prev.items() if k not in ("nights", "chat")})
    if summary and summary[0]["night1_efficacy"] and summary[-1]["night1_efficacy"] is not None:
        out["night1_retention_ratio"] = summary[-1]["night1_efficacy"] / summary[0]["night1_efficacy"]

    if not args.no_chat and last_run is not None and summary[-1]["status"] == "shipped":
        # held-out questions of every consolidated fact the last adapter was evaluated on
        ev = json.loads((last_run / "eval.json").read_text())
        held = [a for a in ev["after"]["answers"] if a["group"] in ("paraphrase", "portability")]
        qs = [a["question"] for a in held]
        routed = chat_closed_book(dd, qs + UNRELATED, "routed")
        off = chat_closed_book(dd, qs + UNRELATED, "off")
        fact_answers = routed[: len(qs)]
        out["chat"] = {
            "in_scope_questions": len(qs),
            "in_scope_correct_closed_book": sum(matches(a, h["gold"]) for a, h in zip(fact_answers, held)),
            "in_scope_correct_base": sum(matches(a, h["gold"]) for a, h in zip(off[: len(qs)], held)),
            "agrees_with_trainer_eval": sum(a.startswith(h["answer"]) for a, h in zip(fact_answers, held)),
            "unrelated_questions": len(UNRELATED),
            "unrelated_identical_to_base": sum(a == b for a, b in zip(routed[len(qs):], off[len(qs):])),
            "examples": [{"q": q, "routed": a, "off": b} for q, a, b in zip(qs + UNRELATED, routed, off)],
        }
    (dd / "nights.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in out.items() if k != "nights"}, indent=2))
    return 0 if all(r["status"] == "shipped" for r in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
