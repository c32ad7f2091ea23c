"""The consolidation report: Markdown + HTML + PNG plots in the run's folder.

The report is built as a list of blocks (heading, paragraph, table, image,
pre) rendered twice, so the Markdown and the HTML always say the same thing.
matplotlib is imported only here, with the Agg backend.
"""
from __future__ import annotations

import html
import os
from datetime import date as date_cls, datetime
from pathlib import Path
from typing import Any

from trainer import runs
from trainer.errors import TrainerError

Block = tuple[str, Any]

METRIC_ROWS = [
    ("efficacy", "Efficacy (fact's own prompt)"),
    ("paraphrase", "Paraphrase (held-out single-hop)"),
    ("portability", "Portability (held-out multi-hop)"),
    ("paraphrase_verified", "Paraphrase, teacher-verified questions"),
    ("portability_verified", "Portability, teacher-verified questions"),
    ("replay", "Replay (earlier facts trained on again)"),
    ("retention", "Retention (earlier nights' facts, not replayed)"),
    ("asserted", "Retracted facts still asserted (lower is better)"),
    ("locality", "Locality (probes unchanged)"),
    ("locality_kl", "Locality mean KL (nats/token)"),
    ("arithmetic", "Arithmetic a+b="),
]


def _fmt(v: Any, key: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if key == "locality_kl" else f"{100 * v:.1f}%"
    return str(v)


def metrics_table(metrics: dict[str, Any]) -> list[list[str]]:
    """One row per metric; columns base, teacher ceiling, before (the model the run started
    from), after as served (routed) and, with routing, after applied to every prompt."""
    cols = ["base", "teacher", "before", "after"]
    head = ["metric", "base", "teacher ceiling (story in context)", "before", "after"]
    if metrics.get("after_unrouted"):
        cols.append("after_unrouted")
        head = head[:-1] + ["after, as served (routed)", "after, on every prompt"]
    rows = [head]
    for key, label in METRIC_ROWS:
        n = (metrics.get("after") or metrics.get("base") or {}).get(f"n_{key}")
        if n == 0 and key in ("replay", "retention", "asserted"):
            continue  # nothing to replay, retain or unlearn this run
        if n is not None:
            label = f"{label} (n={n})"
        row = [label]
        for c in cols:
            m = metrics.get(c) or {}
            if c == "teacher" and key in ("locality", "locality_kl", "arithmetic", "retention"):
                row.append("")
            else:
                row.append(_fmt(m.get(key), key))
        rows.append(row)
    return rows


def router_rows(metrics: dict[str, Any], scope_names: list[str] | None = None) -> list[list[str]]:
    """The router's statistics: recall on held-out in-scope questions, false positives on
    the locality probes, and the shares of evaluation prompts it sent to the adapter."""
    r = metrics.get("router") or {}
    after = metrics.get("after") or {}
    if not r:
        return []
    rows = [["", ""],
            ["names in scope", str(r.get("names"))],
            ["recall (held-out paraphrase + multi-hop questions routed to the adapter)",
             f"{_fmt(r.get('recall'))} of {r.get('n_in_scope')}"],
            ["false-positive rate (locality probes routed to the adapter)",
             f"{_fmt(r.get('false_positive_rate'))} of {r.get('n_out_of_scope')}"],
            ["evaluation questions routed", _fmt(after.get("routed_questions"))],
            ["locality probes routed", _fmt(after.get("routed_probes"))]]
    if scope_names:
        shown = ", ".join(scope_names[:40]) + (f", … ({len(scope_names) - 40} more)" if len(scope_names) > 40 else "")
        rows.append(["scope", shown])
    return rows


def learned_rows(facts: list[dict[str, Any]], ev: dict[str, Any]) -> list[list[str]]:
    """Per fact of the run: its own sentence before -> after, and its held-out questions."""
    def by_fact(which: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for a in (ev.get(which) or {}).get("answers") or []:
            out.setdefault(a["fact_id"], []).append(a)
        return out

    before, after = by_fact("before"), by_fact("after")
    rows = [["fact", "kind", "own sentence before → after", "held-out questions right (after)", "answer after"]]
    for f in facts:
        a = after.get(f["id"], [])
        b = {x["question"]: x for x in before.get(f["id"], [])}
        own = [x for x in a if x["group"] in ("efficacy", "replay", "asserted")]
        held = [x for x in a if x["group"] in ("paraphrase", "portability")]

        def mark(x: dict[str, Any] | None) -> str:
            if x is None:
                return "–"
            ok = not x["correct"] if x["group"] == "asserted" else x["correct"]
            return "✓" if ok else "✗"

        own_s = ", ".join(f"{mark(b.get(x['question']))} → {mark(x)}" for x in own) or "–"
        held_s = f"{sum(x['correct'] for x in held)}/{len(held)}" if held else "–"
        rows.append([f["text"], f["kind"], own_s, held_s, (own[0]["answer"] if own else "")[:60]])
    return rows


def _plots(run_dir: Path, rec: dict[str, Any]) -> list[Block]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[Block] = []
    log = runs.read_json(run_dir / "train_log.json")
    if log and log.get("history"):
        hist = log["history"]
        val = [v for v in log.get("val_history", []) if "val_loss" in v]  # a convergence check without a validation split has none
        fig, ax = plt.subplots(figsize=(7, 3.6))
        steps = [r["step"] for r in hist]
        ax.plot(steps, [r["loss"] for r in hist], label="train loss", lw=1.5)
        ax.plot(steps, [r["distill"] for r in hist], label="T²·KL(teacher‖student)", lw=1, alpha=0.8)
        ax.plot(steps, [r["locality"] for r in hist], label="KL(base‖student) on probes", lw=1, alpha=0.8)
        if val:
            ax.plot([v["step"] for v in val], [v["val_loss"] for v in val], "o-", label="validation loss (held-out questions + probes)", lw=1.5)
        best = rec.get("train", {}).get("best_step")
        if best:
            ax.axvline(best, color="grey", ls="--", lw=0.8, label=f"best step {best}")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_yscale("symlog", linthresh=0.01)
        ax.legend(fontsize=7)
        ax.set_title("Distillation loss")
        fig.tight_layout()
        fig.savefig(run_dir / "loss.png", dpi=110)
        plt.close(fig)
        out.append(("img", ("loss.png", "Loss curves")))
    m = rec.get("metrics") or {}
    if m.get("after"):
        keys = ["efficacy", "paraphrase", "portability", "locality", "arithmetic"]
        for extra in ("retention", "replay"):
            if (m["after"].get(extra)) is not None:
                keys.insert(3, extra)
        fig, ax = plt.subplots(figsize=(8, 3.6))
        series = [("base", "#bbbbbb", "base"), ("before", "#6c8ebf", "before"), ("after", "#d6872b", "after (as served)"),
                  ("teacher", "#82b366", "teacher (ceiling)")]
        if m.get("after_unrouted"):
            series.insert(3, ("after_unrouted", "#e8c39e", "after, every prompt"))
        w = 0.8 / len(series)
        for j, (name, color, label) in enumerate(series):
            vals = []
            for k in keys:
                v = (m.get(name) or {}).get(k)
                if name == "teacher" and k in ("locality", "arithmetic", "retention"):
                    v = None
                vals.append(0.0 if v is None else 100 * v)
            xs = [i + (j - (len(series) - 1) / 2) * w for i in range(len(keys))]
            ax.bar(xs, vals, width=w, label=label, color=color)
        ax.set_xticks(range(len(keys)), keys)
        ax.set_ylabel("%")
        ax.set_ylim(0, 105)
        ax.axhline(100 * float(rec.get("config", {}).get("gate_min_locality", 0.95)), color="red", lw=0.7, ls=":")
        ax.legend(fontsize=7, ncol=5)
        ax.set_title("Before / after")
        fig.tight_layout()
        fig.savefig(run_dir / "metrics.png", dpi=110)
        plt.close(fig)
        out.append(("img", ("metrics.png", "Before/after metrics")))
    return out


def build_blocks(run_dir: Path) -> list[Block]:
    rec = runs.read_json(run_dir / "run.json") or {}
    data = runs.read_json(run_dir / "data.json") or {}
    ev = runs.read_json(run_dir / "eval.json") or {}
    b: list[Block] = []
    b.append(("h1", f"Consolidation {rec.get('id', run_dir.name)}"))
    status = rec.get("status", "?")
    verdict = {"shipped": "SHIPPED", "refused": "REFUSED", "skipped": "SKIPPED"}.get(status, status.upper())
    b.append(("p", f"**{verdict}** — {rec.get('reason', '')}"))
    facts = rec.get("facts", [])
    summary = [
        ["started", rec.get("started_at", "")],
        ["finished", rec.get("finished_at") or ""],
        ["wall time", f"{rec.get('wall_s', 0):.0f} s"],
        ["adapter version", rec.get("adapter_version") or "none (not shipped)"],
        ["resumed from", rec.get("resumed_from") or "base model"],
        ["facts", f"{sum(1 for f in facts if f['kind'] != 'replay')} new/changed + {sum(1 for f in facts if f['kind'] == 'replay')} replayed"],
        ["device / generator", f"{rec.get('device', '?')} / {rec.get('generator', '?')}"],
        ["preset", str(rec.get("config", {}).get("preset", "?"))],
    ]
    tr = rec.get("train") or {}
    if tr:
        summary.append(["training", f"{tr.get('steps')} steps in {tr.get('seconds', 0):.0f} s, best step {tr.get('best_step')} ({tr.get('stopped')}); {tr.get('n_train')} train / {tr.get('n_val')} val items, {tr.get('n_probe')} locality probes"])
    pt = rec.get("phase_times") or {}
    if pt:
        summary.append(["phase start times (s)", ", ".join(f"{k} {v:.0f}" for k, v in pt.items())])
    b.append(("table", [["", ""]] + summary))

    gate = rec.get("gate")
    b.append(("h2", "Gate decision"))
    if gate:
        b.append(("p", gate["reason"]))
        b.append(("table", [["check", "passed", "value", "threshold"]] + [[c["name"], "yes" if c["passed"] else "NO", f"{c['value']:.3f}", f"{c['threshold']:g}"] for c in gate["checks"]]))
    else:
        b.append(("p", "The gate was not reached: " + (rec.get("reason") or "")))

    b.append(("h2", "What was learned"))
    if facts and ev.get("after"):
        b.append(("p", "Each fact's own sentence (cloze) with the model the run started from → the new adapter as served; "
                        "for a retracted fact ✓ means the old value is no longer asserted. Held-out questions were never trained on."))
        b.append(("table", learned_rows(facts, ev)))
    else:
        b.append(("p", "Nothing: the run did not get as far as evaluating an adapter."))

    b.append(("h2", "Before / after"))
    if rec.get("metrics"):
        b.append(("table", metrics_table(rec["metrics"])))
        b.append(("p", "Teacher = the base model with the background story in context: the ceiling the student is distilled towards. "
                        "Locality compares probe answers with those of the model the run started from (the live adapter, or the base model on the first night); "
                        "arithmetic is a+b= for a, b in 0..9. \"As served\" is what the gate decides on: the adapter answers only prompts "
                        "that name something in its scope, the base model the rest; \"on every prompt\" shows what the weights alone do."))
    rrows = router_rows(rec.get("metrics") or {}, _scope_names(run_dir, rec))
    if rrows:
        b.append(("h2", "Router"))
        b.append(("table", rrows))
    ret = ev.get("retention") or {}
    if ret.get("after"):
        b.append(("h2", "Retention of earlier nights"))
        was = {a["fact_id"]: a for a in (ret.get("before") or {}).get("answers") or []}
        rows = [["earlier fact (prompt)", "gold", "live adapter", "new adapter"]]
        for a in ret["after"]["answers"]:
            w = was.get(a["fact_id"])
            rows.append([a["question"], a["gold"], _ans(w), _ans(a)])
        b.append(("table", rows))
    try:
        b.extend(_plots(run_dir, rec))
    except Exception as e:  # plots are a nicety; the tables carry the numbers
        b.append(("p", f"(plots unavailable: {type(e).__name__}: {e})"))

    b.append(("h2", "Facts consolidated"))
    if facts:
        b.append(("table", [["id", "kind", "fact"]] + [[f["id"], f["kind"], f["text"]] for f in facts]))
    counts = rec.get("data")
    if counts:
        rows = [["questions", "generated", "teacher correct", "train", "eval", "dropped"]]
        for t in ("efficacy", "paraphrase", "multihop"):
            c = counts.get(t, {})
            rows.append([t, str(c.get("generated", 0)), str(c.get("teacher_ok", 0)), str(c.get("train", 0)), str(c.get("eval", 0)), str(c.get("dropped", 0))])
        b.append(("table", rows))

    b.append(("h2", "Examples: stories and questions"))
    after = {(a["fact_id"], a["question"]): a for a in ((ev.get("after") or {}).get("answers") or [])}
    before = {(a["fact_id"], a["question"]): a for a in ((ev.get("before") or {}).get("answers") or [])}
    for fd in (data.get("facts") or [])[:4]:
        b.append(("h3", fd["text"]))
        b.append(("p", f"*Story ({fd.get('source', 'generated')}):* {fd['story']}"))
        rows = [["type", "split", "question / prompt", "gold", "teacher", "before", "after"]]
        for q in fd["questions"]:
            k = (fd["fact_id"], q["text"])
            rows.append([q["type"], q["split"], q["text"], q["gold"], q["teacher_answer"] + (" ✓" if q["teacher_ok"] else " ✗"),
                         _ans(before.get(k)), _ans(after.get(k))])
        b.append(("table", rows))
    changed = [p for p in ((ev.get("after") or {}).get("probe_answers") or []) if not p["same"]]
    if ev.get("after"):
        b.append(("h2", "Locality probes whose answer changed"))
        if changed:
            b.append(("table", [["kind", "prompt (end)", "base", "after"]] + [[p["kind"], p["prompt"].replace("\n", " ⏎ "), p["base"], p["answer"]] for p in changed[:25]]))
        else:
            b.append(("p", "None."))
    b.append(("p", f"Files: `{run_dir}` (run.json, data.json, eval.json, train_log.json, adapter/)."))
    return b


def _scope_names(run_dir: Path, rec: dict[str, Any]) -> list[str] | None:
    """The shipped adapter's scope (a refused run's scope is not stored)."""
    v = rec.get("adapter_version")
    if not v:
        return None
    p = run_dir.parents[2] / "adapters" / v / "scope.json" if len(run_dir.parents) > 2 else None
    d = runs.read_json(p) if p else None
    return list(d.get("names", [])) if isinstance(d, dict) else None


def _ans(a: dict[str, Any] | None) -> str:
    if not a:
        return ""
    return f"{a['answer']} {'✓' if a['correct'] else '✗'}"


def _md_cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_md(blocks: list[Block]) -> str:
    out = []
    for kind, v in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {v}\n")
        elif kind == "p":
            out.append(f"{v}\n")
        elif kind == "img":
            out.append(f"![{v[1]}]({v[0]})\n")
        elif kind == "table":
            head, *rows = v
            out.append("| " + " | ".join(_md_cell(c) for c in head) + " |")
            out.append("|" + "---|" * len(head))
            out.extend("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows)
            out.append("")
    return "\n".join(out) + "\n"


def _inline(s: str) -> str:
    # **bold**, *italic*, `code` — enough for what build_blocks writes
    import re

    s = html.escape(s)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"\*(.+?)\*", r"<i>\1</i>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def render_html(blocks: list[Block], title: str) -> str:
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}"
        "th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}</style></head><body>",
    ]
    for kind, v in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{html.escape(str(v))}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_inline(str(v))}</p>")
        elif kind == "img":
            out.append(f"<p><img src='{html.escape(v[0])}' alt='{html.escape(v[1])}'></p>")
        elif kind == "table":
            head, *rows = v
            out.append("<table><tr>" + "".join(f"<th>{_inline(str(c))}</th>" for c in head) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(run_dir: str | os.PathLike) -> Path:
    """Write report.md, report.html (and the PNG plots) into the run folder; return report.md."""
    run_dir = Path(run_dir)
    blocks = build_blocks(run_dir)
    md = run_dir / "report.md"
    runs.atomic_write_text(md, render_md(blocks))
    runs.atomic_write_text(run_dir / "report.html", render_html(blocks, f"knowd consolidation {run_dir.name}"))
    return md


def latest_report(data_dir: str | os.PathLike, date: str | date_cls | None = None, html_: bool = False) -> Path:
    """The newest run report (optionally of runs started on ``date``, YYYY-MM-DD, UTC)."""
    if isinstance(date, str):
        try:
            date = datetime.strptime(date, "%Y-%m-%d").date()
        except ValueError as e:
            raise TrainerError(f"--date must look like 2025-01-31 (got {date!r})") from e
    cands = []
    for rec in runs.list_runs(data_dir):
        d = Path(rec["dir"])
        if not (d / "report.md").is_file():
            continue
        started = runs.parse_iso(rec.get("started_at"))
        if date is not None and (started is None or started.date() != date):
            continue
        cands.append((rec.get("started_at") or "", d))
    if not cands:
        when = f" on {date}" if date else ""
        raise TrainerError(f"no consolidation report{when} under {runs.runs_dir(data_dir)}")
    d = sorted(cands)[-1][1]
    return d / ("report.html" if html_ else "report.md")
