"""Propositions by the model or by the parse: which is right more often, on the shipped samples?

    .venv/bin/python bench/model_propositions.py [--model GGUF]

The model is asked as ../shared/probes/propositions.py asks it (prose, "standalone facts,
one per line", few-shot), one paragraph at a time; a repeated line ends its answer. The
parse is graphs/keyed/propositions.py. Every line of both is judged by the store audit's
rules (bench/harness/audit.py) against bench/gold/samples.yaml at its document's time:
true, stale, unsupported by the text, or malformed. Prints both tallies and the
model's wrong lines.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FEW = """Rewrite the text as short standalone facts, one per line. Use full names instead of pronouns and short names. Keep the text's own words.

Text: Acme Corp, the Berlin-based maker of bicycles, has hired Tom Weber as its chief designer. He previously worked at Volta.
Facts:
- Acme Corp is based in Berlin.
- Acme Corp makes bicycles.
- Tom Weber is the chief designer of Acme Corp.
- Tom Weber previously worked at Volta.

Text: Lina Park has resigned as mayor of Eastport to lead the Harbor Trust. The council named her deputy, Sam Cho, acting mayor.
Facts:
- Lina Park is no longer the mayor of Eastport.
- Lina Park leads the Harbor Trust.
- Sam Cho is the acting mayor of Eastport.
- Sam Cho was Lina Park's deputy.

Text: %s
Facts:
-"""


def model_lines(llm, text: str) -> tuple[list[str], float]:  # noqa: ANN001
    t0 = time.perf_counter()
    out = llm.complete(FEW.replace("%s", text), max_tokens=160, stop=["\n\n", "Text:"], step="propositions").text
    lines: list[str] = []
    for ln in ("-" + out).splitlines():
        ln = ln.strip().lstrip("-").strip()
        if not ln:
            continue
        if ln in lines:
            break  # the model repeats itself: the rest is a loop
        lines.append(ln if ln.endswith(".") else ln + ".")
    return lines, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a GGUF file (default: the bundled model)")
    args = ap.parse_args()
    from agent.config import load_config
    from agent.llm import LlamaCppLLM
    from agent.models import ensure_gguf
    from bench.harness import audit
    from bench.harness.stream import read_stream
    from graphs.keyed.propositions import extract
    from graphs.keyed.names import NameIndex

    cfg = load_config()
    llm = LlamaCppLLM(args.model or ensure_gguf(cfg.data_path), n_ctx=2048)
    samples = ROOT / "bench" / "out" / "samples.jsonl"
    if not samples.exists():
        raise SystemExit("write the samples stream first: knowd bench samples --out bench/out/samples.jsonl")
    docs = read_stream(samples).documents
    gold = audit.load_gold(ROOT / "bench" / "gold" / "samples.yaml")
    tally = {"model": {}, "parse": {}}
    wrong: list[str] = []
    seconds = 0.0
    names = NameIndex()
    for d in docs:
        for para in (p for p in re.split(r"\n\s*\n", d.text) if p.strip()):
            lines, dt = model_lines(llm, " ".join(para.split()))
            seconds += dt
            for ln in lines:
                v = audit.judge(ln, gold, d.time)
                tally["model"][v] = tally["model"].get(v, 0) + 1
                if v != "true":
                    wrong.append(f"{v}: {ln}")
        for p in extract(d.text, d.title, names):
            v = audit.judge(p.text, gold, d.time)
            tally["parse"][v] = tally["parse"].get(v, 0) + 1
            if p.key:
                for n in (p.key.subject, p.key.object):
                    if n[:1].isupper():
                        names.add(n)
    for who, t in tally.items():
        n = sum(t.values())
        print(f"{who}: {n} propositions, true {t.get('true', 0)} ({100 * t.get('true', 0) / n:.0f}%), "
              f"stale {t.get('stale', 0)}, unsupported {t.get('unsupported', 0)}, malformed {t.get('malformed', 0)}")
    print(f"model: {seconds:.1f} s for {len(docs)} documents")
    print("the model's lines that are not true:")
    for w in wrong:
        print("  ", w)


if __name__ == "__main__":
    main()
