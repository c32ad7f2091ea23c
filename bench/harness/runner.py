"""Replay a stream through each system and write results.json, results.md and accuracy.png.

For each system: a fresh folder (store, index) under OUT/work/SYSTEM; documents in
time order through `add_document`; each question answered at its time (after every
document up to that time). Model use is metered around every document and every
question with the LLM's own Meter (snapshots before and after), so the costs are
what the backend counted: calls, prompt and completion tokens, model seconds. Wall
seconds (embedding and store work included) are recorded alongside.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.config import Config
from bench.harness import analysis
from bench.harness.scoring import is_correct, summarise
from bench.harness.stream import (
    Question,
    Stream,
    answer_history,
    iso,
    select_questions,
    subset_by_entities,
    subset_by_time,
)
from bench.harness.systems import SYSTEMS, BenchEnv
from graphs.llm import LLM
from stores.errors import InputError
from stores.types import Document
from stores.vector import Embedder

Progress = Callable[[str], None]
_COST_KEYS = ("calls", "prompt_tokens", "completion_tokens", "seconds")


@dataclass
class BenchOptions:
    systems: list[str] = field(default_factory=lambda: ["knowd", "rag", "fact-rag", "long-context"])
    max_questions: int | None = None
    max_docs: int | None = None
    subset: str = "time"  # time | entities (see bench.harness.stream)
    seed: int = 0
    k: int = 8  # items retrieved per question (facts or chunks)
    budget_tokens: int | None = None  # context tokens for retrieval; None = half the context
    weights_checkpoints: int = 0  # weights systems: consolidate at this many question times (0 = every one)
    out: Path = Path("bench/out")


def prepare(stream: Stream, opts: BenchOptions) -> tuple[Stream, dict[str, Any]]:
    """Apply --max-docs (by the chosen subset rule) then --max-questions; describe what was kept."""
    unknown = [s for s in opts.systems if s not in SYSTEMS]
    if unknown:
        raise InputError(f"unknown system {unknown[0]!r} (choose from {', '.join(SYSTEMS)})")
    if opts.subset == "time":
        sub = subset_by_time(stream, opts.max_docs)
    elif opts.subset == "entities":
        sub = subset_by_entities(stream, opts.max_docs, opts.seed)
    else:
        raise InputError(f"unknown subset rule {opts.subset!r} (time or entities)")
    qs = select_questions(sub.questions, opts.max_questions, opts.seed)
    info = {
        "documents_in_stream": len(stream.documents), "questions_in_stream": len(stream.questions),
        "subset_rule": opts.subset, "max_docs": opts.max_docs, "max_questions": opts.max_questions,
        "documents": len(sub.documents), "questions_after_subset": len(sub.questions), "questions": len(qs),
        "changed_questions": sum(q.changed for q in qs), "seed": opts.seed,
    }
    return Stream(sub.documents, qs), info


def code_version() -> dict[str, Any]:
    """The commit and the uncommitted files the run used: other parts change concurrently."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "agent", "graphs", "stores", "bench"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    if head.returncode != 0:
        return {}
    return {"commit": head.stdout.strip(), "uncommitted": [ln[3:] for ln in dirty.stdout.splitlines()]}


def checkpoint_times(questions: list[Question], n: int) -> list[datetime]:
    """The question times the weights systems consolidate at: every distinct one, or `n`
    of them spread evenly (always the first, so the first questions see the first adapter)."""
    times = sorted({q.time for q in questions})
    if not n or n >= len(times):
        return times
    return [times[round(i * (len(times) - 1) / max(1, n - 1))] for i in range(n)] if n > 1 else times[:1]


def chance_accuracy(questions: list[Question]) -> float | None:
    """Expected accuracy of guessing uniformly: one of the choices, or a non-empty subset for lists."""
    if not questions:
        return None
    p = [1 / (2 ** len(q.choices) - 1) if q.is_list else 1 / len(q.choices) for q in questions]
    return round(sum(p) / len(p), 4)


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: round(after[k] - before[k], 3) if k == "seconds" else after[k] - before[k] for k in _COST_KEYS}


def _cost_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    tot = {k: round(sum(r["cost"][k] for r in rows), 3) for k in _COST_KEYS}
    tot["wall_seconds"] = round(sum(r["wall_seconds"] for r in rows), 3)
    mean = {k: round(v / n, 3) if n else 0.0 for k, v in tot.items()}
    return {"n": n, "total": tot, "mean": mean}


def run_system(
    name: str, stream: Stream, env: BenchEnv, history: dict[str, list[tuple[datetime, Any]]],
    progress: Progress = lambda s: None,
) -> dict[str, Any]:
    """Replay the stream through one system; per-document and per-question records."""
    if env.workdir.exists():
        shutil.rmtree(env.workdir)  # a fresh store per system and run
    system = SYSTEMS[name](env)
    llm = env.llm
    docs: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    events = stream.events()
    n_docs, n_qs = len(stream.documents), len(stream.questions)
    try:
        for ev in events:
            before, t0 = llm.meter.snapshot(), time.perf_counter()
            if isinstance(ev, Document):
                info = system.add_document(ev)
                row = {"id": ev.id, "time": iso(ev.time), **info}
                row["cost"], row["wall_seconds"] = _delta(before, llm.meter.snapshot()), round(time.perf_counter() - t0, 3)
                docs.append(row)
                progress(f"[{name}] doc {len(docs)}/{n_docs} {ev.id}: {info['status']} "
                         f"({row['cost']['calls']} calls, {row['wall_seconds']:.1f}s)")
                continue
            a = system.answer(ev)
            ok = is_correct(a.prediction, ev.answer)
            row = {
                "id": ev.id, "time": iso(ev.time), "question": ev.question, "choices": ev.choices,
                "answer": ev.answer, "prediction": a.prediction, "correct": ok, "updates": ev.updates,
                "changed": ev.changed, "kind": "list" if ev.is_list else "single", "context": a.context,
                "retrieved": a.fact_ids, "decided": a.decided,
            }
            row["cost"], row["wall_seconds"] = _delta(before, llm.meter.snapshot()), round(time.perf_counter() - t0, 3)
            if not ok and system.store is not None:
                row["cause"] = analysis.diagnose(ev, a.prediction, a.fact_ids, system.store, history.get(ev.question))
            answers.append(row)
            progress(f"[{name}] question {len(answers)}/{n_qs}: {'right' if ok else 'wrong'} ({row['wall_seconds']:.1f}s)")
        has_store = system.store is not None
        store_stats = system.store.count_facts() if has_store else None
        extra = system.stats() if hasattr(system, "stats") else {}
    finally:
        system.close()
    out: dict[str, Any] = {
        "accuracy": summarise(answers),
        "cost": {"per_document": _cost_summary(docs), "per_question": _cost_summary(answers)},
        "documents_failed": sum(1 for d in docs if d["status"] == "failed"),
        "store": store_stats,
        "documents": docs,
        "questions": answers,
        **extra,
    }
    causes = [r["cause"] for r in answers if "cause" in r]
    if has_store:
        out["errors"] = analysis.summarise_causes(causes)
    return out


def run_benchmark(
    stream: Stream, opts: BenchOptions, *, llm: LLM, embedder: Embedder, cfg: Config,
    stream_name: str = "stream", progress: Progress = lambda s: None, generator: Any = None,
) -> dict[str, Any]:
    """Prepare the stream, replay it through every system, write the outputs; returns the results.
    `generator` is the trainer's text generator for the weights systems (tests: a scripted one)."""
    history = answer_history(stream.questions)  # before selection: earlier answers are the stale ones
    sub, info = prepare(stream, opts)
    budget = opts.budget_tokens or llm.n_ctx // 2
    results: dict[str, Any] = {
        "stream": stream_name, "started": iso(datetime.now(timezone.utc)), "code": code_version(), "model": llm.name,
        "adapter": (getattr(llm, "adapter", None) or {}).get("gguf"), "n_ctx": llm.n_ctx,
        "k": opts.k, "budget_tokens": budget, "selection": info, "chance_accuracy": chance_accuracy(sub.questions),
        "systems": {},
    }
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "work" / "_consolidation", ignore_errors=True)  # the weights systems' runs: fresh per bench run
    for name in opts.systems:
        env = BenchEnv(llm=llm, embedder=embedder, cfg=cfg, workdir=out / "work" / name, k=opts.k, budget_tokens=budget,
                       checkpoints=checkpoint_times(sub.questions, opts.weights_checkpoints), generator=generator)
        t0 = time.perf_counter()
        res = run_system(name, sub, env, history, progress)
        res["wall_seconds"] = round(time.perf_counter() - t0, 3)
        results["systems"][name] = res
        write_outputs(results, out)  # after each system, so a long run leaves partial results
    results["finished"] = iso(datetime.now(timezone.utc))
    write_outputs(results, out)
    return results


# ----------------------------------------------------------------------------- outputs
def write_outputs(results: dict[str, Any], out: Path) -> dict[str, Path]:
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "accuracy.png"}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(paths["json"])
    paths["md"].write_text(markdown(results), encoding="utf-8")
    plot(results, paths["png"])
    return paths


def rerender(out: Path) -> dict[str, Path]:
    """Write results.md and accuracy.png again from an existing results.json."""
    path = Path(out) / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read results ({e})") from None
    if results.get("chance_accuracy") is None and results.get("systems"):
        rows = next(iter(results["systems"].values()))["questions"]
        qs = [Question(r["id"], datetime.now(timezone.utc), r["question"], r["choices"], r["answer"]) for r in rows]
        results["chance_accuracy"] = chance_accuracy(qs)
    return write_outputs(results, Path(out))


def _pct(acc: dict[str, Any]) -> str:
    return "–" if not acc["n"] else f"{100 * acc['accuracy']:.1f} ({acc['correct']}/{acc['n']})"


def _code_line(results: dict[str, Any]) -> str:
    code = results.get("code") or {}
    if not code:
        return ""
    dirty = f" + uncommitted {', '.join(code['uncommitted'])}" if code.get("uncommitted") else ""
    return f"Code: commit {code['commit']}{dirty}; started {results['started']}. "


def markdown(results: dict[str, Any]) -> str:
    """Accuracy table, cost table and (for fact-store systems) the error analysis."""
    sel = results["selection"]
    lines = [
        f"# Benchmark: {results['stream']}",
        "",
        f"Model `{results['model']}` (n_ctx {results['n_ctx']}"
        + (f", adapter `{results['adapter']}`" if results.get("adapter") else "")
        + f"); retrieval: k={results['k']}, at most {results['budget_tokens']} context tokens. "
        + _code_line(results)
        + f"{sel['documents']} of {sel['documents_in_stream']} documents, {sel['questions']} of "
        f"{sel['questions_in_stream']} questions ({sel['changed_questions']} changed; subset rule "
        f"`{sel['subset_rule']}`, max docs {sel['max_docs']}, max questions {sel['max_questions']}, seed {sel['seed']}).",
        "",
        "Accuracy in % (correct/n)"
        + (f"; guessing uniformly would score {100 * results['chance_accuracy']:.1f}%" if results.get("chance_accuracy") is not None else "")
        + ":",
        "",
        "| system | all | updates 0 | updates 1 | updates 2+ | changed | unchanged | single | list |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["systems"].items():
        a = r["accuracy"]
        lines.append(
            f"| {name} | {_pct(a['overall'])} | {_pct(a['by_updates']['0'])} | {_pct(a['by_updates']['1'])} | "
            f"{_pct(a['by_updates']['2+'])} | {_pct(a['by_changed']['changed'])} | {_pct(a['by_changed']['unchanged'])} | "
            f"{_pct(a['by_kind']['single'])} | {_pct(a['by_kind']['list'])} |"
        )
    lines += [
        "",
        "Model use per document (ingest) and per question (answer), means; LLM seconds are the backend's:",
        "",
        "| system | docs failed | calls/doc | tokens/doc | LLM s/doc | wall s/doc | calls/q | tokens/q | LLM s/q | wall s/q | total wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["systems"].items():
        d, q = r["cost"]["per_document"]["mean"], r["cost"]["per_question"]["mean"]
        lines.append(
            f"| {name} | {r['documents_failed']} | {d['calls']:.1f} | {d['prompt_tokens'] + d['completion_tokens']:.0f} | "
            f"{d['seconds']:.1f} | {d['wall_seconds']:.1f} | {q['calls']:.1f} | {q['prompt_tokens'] + q['completion_tokens']:.0f} | "
            f"{q['seconds']:.2f} | {q['wall_seconds']:.2f} | {r.get('wall_seconds', 0):.0f} |"
        )
    errs = {n: r["errors"] for n, r in results["systems"].items() if r.get("errors")}
    if errs:
        lines += [
            "",
            "Wrong answers by cause (systems with a store: facts, or chunks for rag; heuristic, see bench/harness/analysis.py):",
            "",
            "| system | wrong | " + " | ".join(analysis.CAUSES) + " |",
            "|---|---|" + "---|" * len(analysis.CAUSES),
        ]
        for name, e in errs.items():
            lines.append(f"| {name} | {e['wrong']} | " + " | ".join(str(e["causes"][c]) for c in analysis.CAUSES) + " |")
    cons = {n: r["consolidations"] for n, r in results["systems"].items() if r.get("consolidations")}
    if cons:
        lines += [
            "",
            "Consolidations of the weights systems (at each checkpoint; metrics of the adapter as served, from the run's gate):",
            "",
            "| system | checkpoint | status | adapter | efficacy | paraphrase | portability | retention | locality | arithmetic | s | reused |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, rows in cons.items():
            for c in rows:
                m = c.get("metrics") or {}
                cells = [_share(m.get(k)) for k in ("efficacy", "paraphrase", "portability", "retention", "locality", "arithmetic")]
                lines.append(f"| {name} | {c['checkpoint'][:10]} | {c['status']} | {c.get('version') or '–'} | " + " | ".join(cells)
                             + f" | {c.get('seconds', 0):.0f} | {'yes' if c.get('reused') else 'no'} |")
    return "\n".join(lines) + "\n"


def _share(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def plot(results: dict[str, Any], path: Path) -> None:
    """Accuracy at each checkpoint (question time), and cumulative, one line per system."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for name, r in results["systems"].items():
        cps = r["accuracy"]["checkpoints"]
        if not cps:
            continue
        xs = list(range(len(cps)))
        axes[0].plot(xs, [c["accuracy"] for c in cps], marker="o", label=name)
        axes[1].plot(xs, [c["cumulative"] for c in cps], marker="o", label=name)
    for ax, title in zip(axes, ("accuracy at checkpoint", "cumulative accuracy")):
        ax.set_title(title)
        ax.set_xlabel("checkpoint (question time, in order)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    any_cps = next((r["accuracy"]["checkpoints"] for r in results["systems"].values() if r["accuracy"]["checkpoints"]), [])
    if 0 < len(any_cps) <= 12:
        for ax in axes:
            ax.set_xticks(range(len(any_cps)), [c["time"][:10] for c in any_cps], rotation=30, ha="right", fontsize=7)
    if any(r["accuracy"]["checkpoints"] for r in results["systems"].values()):
        axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle(str(results["stream"]), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
