"""The shipped samples, end to end, as a new user meets them: `knowd run` on config.yaml's
connectors, then the gold questions of bench/gold/samples.yaml asked over the HTTP API
(the official openai client), then the store audited against the gold facts.

    .venv/bin/python bench/samples_api.py [--out bench/out/samples] [--model GGUF]

A fresh data folder under --out; the daemon runs on a free loopback port with the
configured model (the bundled one unless --model) and is stopped at the end. An answer
is right when it names one of the question's `answer` strings and none of its `reject`
strings. Prints the answers and a summary; writes answers.json and the audit files.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import audit  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drained(db: Path, expected: int) -> bool:
    """Every document the connectors queued has been ingested (or failed for good)."""
    if not db.exists():
        return False
    with sqlite3.connect(db) as c:
        rows = dict(c.execute("SELECT status, count(*) FROM inbox GROUP BY status").fetchall())
    return rows.get("queued", 0) == 0 and sum(rows.values()) >= expected


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/out/samples")
    ap.add_argument("--model", help="a GGUF file (default: the configured model)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for the samples to be ingested")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    base = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    port = free_port()
    base["data_dir"] = str(out / "data")
    base["server"] = {**base.get("server", {}), "host": "127.0.0.1", "port": port}
    base["daemon"] = {**base.get("daemon", {}), "consolidate_at": None, "log_format": "text"}
    for c in base["connectors"]:  # the samples, wherever this runs from
        for k in ("url", "path"):
            if k in c["options"] and "://" not in c["options"][k]:
                c["options"][k] = str(ROOT / c["options"][k])
    if args.model:
        base["llm"] = {**base["llm"], "model_path": str(Path(args.model).resolve())}
    cfg_path = out / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(base), encoding="utf-8")
    gold_path = ROOT / "bench" / "gold" / "samples.yaml"
    gold_raw = yaml.safe_load(gold_path.read_text(encoding="utf-8"))

    log = open(out / "daemon.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "agent", "--config", str(cfg_path), "run"], stdout=log, stderr=log,
                            cwd=out, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        from openai import OpenAI

        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", timeout=120)
        deadline = time.time() + args.timeout
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"knowd run exited with {proc.returncode}; see {out / 'daemon.log'}")
            try:
                client.models.list()
                if drained(out / "data" / "knowd.sqlite", 15):
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.time() > deadline:
                raise SystemExit(f"the samples were not ingested within {args.timeout} s")
            time.sleep(1)
        ingest_s = time.perf_counter() - t0
        rows, right = [], 0
        for g in gold_raw["questions"]:
            t = time.perf_counter()
            r = client.chat.completions.create(model="knowd", messages=[{"role": "user", "content": g["q"]}])
            answer = r.choices[0].message.content or ""
            first = answer.split("\n\nSources:")[0]  # the cited facts the API appends are not the answer
            ok = any(a.lower() in first.lower() for a in g["answer"]) and not any(x.lower() in first.lower() for x in g.get("reject", []))
            right += ok
            rows.append({"question": g["q"], "answer": first, "right": ok, "seconds": round(time.perf_counter() - t, 2)})
            print(f"{'right' if ok else 'WRONG'} | {g['q']} -> {first}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    n = len(rows)
    print(f"\nsamples over the HTTP API: {right}/{n} right ({100 * right / n:.1f}%); ingest + start-up {ingest_s:.1f} s")
    (out / "answers.json").write_text(json.dumps({"right": right, "n": n, "answers": rows}, indent=1), encoding="utf-8")

    # the store the daemon left, audited after every document and once all announced changes are due
    sys.path.insert(0, str(ROOT))
    from stores.sqlite import Store

    store = Store(out / "data" / "knowd.sqlite")
    gold = audit.load_gold(gold_path)
    facts = store.list_facts(current_only=False)
    times = sorted({d["published_at"] for d in store.list_documents(limit=10_000) if d["published_at"]})
    points = []
    for ts in [*times, None]:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00")) if ts else datetime.now(timezone.utc)
        cur = [f.text for f in facts if f.truth_at(t) is True]
        points.append(audit.checkpoint(cur, gold, t))
    docs = {d["id"]: "" for d in store.list_documents(limit=10_000)}
    for doc_id in docs:
        d = store.get_document(doc_id)
        docs[doc_id] = f"{d.title or ''}\n{d.text}" if d else ""
    s, ops = audit.summary(points), audit.op_quality(store, gold, docs)
    print(f"audit: precision {s['precision']:.3f} (min {s['precision_min']:.2f}), recall {s['recall']:.3f} "
          f"(min {s['recall_min']:.2f}), stale rate {s['stale_rate']:.3f} (max {s['stale_rate_max']:.2f}); "
          f"collateral make_false {ops['collateral_make_false']}/{ops['make_false']}, reinforce precision {ops['reinforce_precision']}")
    last = points[-1]
    for kind in ("stale", "unsupported", "malformed", "missed"):
        print(f"  {kind}: {last.examples[kind]}")
    (out / "audit.json").write_text(json.dumps({"summary": s, "operations": ops, "last": last.examples}, indent=1), encoding="utf-8")
    return 0 if right == n else 1


if __name__ == "__main__":
    raise SystemExit(main())
