"""Generation-based evaluation: decode the short answer, compare it to gold.

Metrics (all shares in 0..1):

* efficacy     the fact's own prompt (cloze, else its first question) — new and retracted facts
* paraphrase   held-out single-hop questions (never trained on)
* portability  held-out multi-hop questions (never trained on)
* *_verified   paraphrase/portability on the held-out questions the teacher answered as intended
* replay       efficacy on replayed earlier facts (trained on again this run)
* retention    efficacy on every other fact of earlier nights (not trained on this run;
               datagen.retention_data): what the adapter kept
* asserted     share of retracted facts whose own sentence still ends in the old value (1 - unlearned)
* locality     share of probe answers identical to the base model's (general, held-out facts, arithmetic)
* routed       with a scope (trainer/scope.py), the share of prompts the router sent to the adapter:
               "as served", every other prompt is answered by the base model
* locality_kl  mean per-token KL(base || model) on the probes' base answers (teacher-forced)
* arithmetic   accuracy on a+b= for a, b in 0..9

The teacher ceiling is the same efficacy/paraphrase/portability questions
answered by the base model with the story in context.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from trainer.datagen import FactData, Probe, Question, probe_stop, routed_generate
from trainer.prompts import answer

GROUPS = ("efficacy", "paraphrase", "portability", "replay", "retention", "asserted")


@dataclass
class _Q:
    group: str
    fact_id: str
    q: Question
    context: str | None


def _questions(facts: Sequence[FactData], with_story: bool) -> list[_Q]:
    out = []
    for fd in facts:
        ctx = fd.story if with_story else None
        for q in fd.of("efficacy"):
            group = {"replay": "replay", "retained": "retention"}.get(fd.kind, "efficacy")
            out.append(_Q(group, fd.fact_id, q, ctx))
        for q in fd.of("unlearn"):
            out.append(_Q("asserted", fd.fact_id, q, None))  # a retracted fact's old value, still said
        if fd.kind in ("replay", "retained"):
            continue
        for q in fd.of("paraphrase", "eval"):
            out.append(_Q("paraphrase", fd.fact_id, q, ctx))
        for q in fd.of("multihop", "eval"):
            out.append(_Q("portability", fd.fact_id, q, ctx))
    return out


def _mean(xs: Sequence[bool | float]) -> float | None:
    return sum(float(x) for x in xs) / len(xs) if xs else None


def evaluate(
    gen: Any,
    which: str,
    facts: Sequence[FactData],
    probes: Sequence[Probe],
    cfg: Any,
    *,
    with_story: bool = False,
    include_probes: bool = True,
    progress: Callable[[int], None] | None = None,
    scope: Any = None,
) -> dict[str, Any]:
    """Answer every evaluation question (and probe) with ``gen`` in mode ``which``; score them.
    With ``scope`` (and ``which="adapter"``) the answers are those of the adapter as served:
    routed per prompt.

    Returns {"metrics": {...}, "answers": [...], "probe_answers": [...]}.
    """
    qs = _questions(facts, with_story)
    answers: list[str] = [""] * len(qs)
    routed: list[bool] = [False] * len(qs)
    for stop in (("\n",), ("\n", ".")):
        idx = [i for i, x in enumerate(qs) if x.q.stop == stop]
        if idx:
            raws, on = routed_generate(gen, [qs[i].q.prompt(qs[i].context) for i in idx], cfg.eval_max_new_tokens, which, stop, scope)
            for i, r, o in zip(idx, raws, on):
                answers[i], routed[i] = answer.parse(r), o
            if progress:
                progress(len(idx))
    ok = [answer.matches(a, x.q.gold) for a, x in zip(answers, qs)]
    metrics: dict[str, Any] = {g: _mean([o for o, x in zip(ok, qs) if x.group == g]) for g in GROUPS}
    metrics.update({f"n_{g}": sum(1 for x in qs if x.group == g) for g in GROUPS})
    # The same held-out questions, restricted to those whose generated gold the teacher
    # confirmed (a small model's self-generated answers are often wrong).
    for g in ("paraphrase", "portability"):
        sub = [o for o, x in zip(ok, qs) if x.group == g and x.q.teacher_ok]
        metrics[f"{g}_verified"] = _mean(sub)
        metrics[f"n_{g}_verified"] = len(sub)
    if scope is not None and which == "adapter":
        metrics["routed_questions"] = _mean(routed)
    out: dict[str, Any] = {
        "which": which + ("+story" if with_story else "") + (" as served (routed)" if scope is not None and which == "adapter" else ""),
        "answers": [
            {"group": x.group, "fact_id": x.fact_id, "question": x.q.text, "gold": x.q.gold, "answer": a, "correct": o, "routed": r}
            for x, a, o, r in zip(qs, answers, ok, routed)
        ],
    }
    if include_probes:
        ev = [p for p in probes if p.split == "eval"]
        pans: list[str] = [""] * len(ev)
        prouted: list[bool] = [False] * len(ev)
        for stop in (("\n",), ("\n", ".")):
            idx = [i for i, p in enumerate(ev) if probe_stop(p) == stop]
            if idx:
                raws, on = routed_generate(gen, [ev[i].prompt for i in idx], cfg.probe_max_new_tokens, which, stop, scope)
                for i, r, o in zip(idx, raws, on):
                    pans[i], prouted[i] = answer.parse(r), o
                if progress:
                    progress(len(idx))
        metrics.update(score_probes(ev, pans))
        if scope is not None and which == "adapter":
            metrics["routed_probes"] = _mean(prouted)
        out["probe_answers"] = [
            {"kind": p.kind, "prompt": p.prompt[-80:], "base": p.base_answer, "answer": a, "routed": r,
             "same": answer.normalize(a) == answer.normalize(p.base_answer)}
            for p, a, r in zip(ev, pans, prouted)
        ]
    out["metrics"] = metrics
    return out


def score_probes(probes: Sequence[Probe], answers: Sequence[str]) -> dict[str, Any]:
    """Locality (share unchanged vs the base answers, overall and per kind) and arithmetic accuracy."""
    same = [answer.normalize(a) == answer.normalize(p.base_answer) for p, a in zip(probes, answers)]
    res: dict[str, Any] = {"locality": _mean(same), "n_locality": len(same)}
    for kind in ("general", "heldout", "arithmetic"):
        res[f"locality_{kind}"] = _mean([s for s, p in zip(same, probes) if p.kind == kind])
    arith = [(answer.first_int(a) == int(p.gold)) for p, a in zip(probes, answers) if p.kind == "arithmetic" and p.gold is not None]
    res["arithmetic"] = _mean(arith)
    return res


def locality_kl(model: Any, tok: Any, probes: Sequence[Probe], device: Any, batch_size: int = 8, limit: int = 0) -> float:
    """Mean per-token KL(base || model) over the eval probes' reference answers (full vocabulary).

    With ``limit``, only that many probes: general and held-out ones first, then arithmetic.
    """
    import torch
    import torch.nn.functional as F

    from trainer.distill import answer_logits, encode

    chosen = sorted((p for p in probes if p.split == "eval" and p.base_raw), key=lambda p: p.kind == "arithmetic")
    if limit:
        chosen = chosen[:limit]
    seqs, ns = [], []
    for p in chosen:
        end = "." if probe_stop(p) != ("\n",) and not p.base_raw.endswith(".") else "\n"
        ans = tok(p.base_raw + end, add_special_tokens=False)["input_ids"]
        seqs.append(encode(tok, p.prompt, ans, 512))
        ns.append(len(ans))
    if not seqs:
        return 0.0
    total, count = 0.0, 0
    pad = tok.pad_token_id
    with torch.no_grad():
        for b in range(0, len(seqs), batch_size):
            s, n = seqs[b : b + batch_size], ns[b : b + batch_size]
            with model.disable_adapter():
                base = answer_logits(model, s, n, pad, device)
            cur = answer_logits(model, s, n, pad, device)
            for lb, lc in zip(base, cur):
                pb, pc = F.log_softmax(lb, -1), F.log_softmax(lc, -1)
                total += float((pb.exp() * (pb - pc)).sum())
                count += lb.shape[0]
    return total / max(1, count)
