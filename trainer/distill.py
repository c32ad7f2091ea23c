"""Story distillation: the training loop (one readable loop, nanoGPT style).

Teacher = base model (adapter disabled) with the story in context; student =
base + LoRA without the story. Loss per step::

    T^2 * KL(teacher_T || student_T)   on the teacher's answer tokens
  + lambda * KL(base || student)       on the locality probes' answer tokens

Teacher and base distributions do not change during training (the base
weights are frozen), so they are computed once and cached as their top-k
tokens plus a 'rest' bucket (``teacher_top_k``; 0 keeps the full vocabulary).
The KL over that partition is exact for the partition and a lower bound of the
full-vocabulary KL.

Sequences are left-padded so every answer sits at the end of its row: one
forward with ``logits_to_keep`` computes logits only where they are needed
(Gemma's 262k-token lm_head is most of the model's compute).
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F


@dataclass
class Item:
    """One tokenised sequence: prompt + answer; the KL is taken on the answer."""

    input_ids: list[int]
    n_answer: int  # answer tokens at the end of input_ids
    kind: str  # "distill" | "locality"
    fact_id: str | None = None
    target: dict[str, torch.Tensor] | None = None  # cached teacher/base distribution
    teacher_ids: list[int] | None = None  # where the target comes from (story in context)


def encode(tok: Any, prompt: str, answer_ids: Sequence[int], max_len: int) -> list[int]:
    """Token ids of prompt + answer; an over-long prompt loses its left part (after <bos>)."""
    ids = tok(prompt, add_special_tokens=True)["input_ids"]
    room = max_len - len(answer_ids)
    if len(ids) > room:
        ids = ids[:1] + ids[len(ids) - room + 1 :]
    return list(ids) + list(answer_ids)


def collate(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Left-pad; position ids count real tokens only."""
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, n - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, n - len(s) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": pos.to(device)}


def answer_logits(model: Any, seqs: Sequence[Sequence[int]], n_answer: Sequence[int], pad_id: int, device: torch.device) -> list[torch.Tensor]:
    """For each sequence, the logits [n_answer, V] at the positions that predict its answer tokens.

    The transformer runs on the batch; the lm_head (262k x 640, most of the cost) only on
    the positions gathered into one contiguous matrix: one matrix product that reads the
    weight once, where the model's own `logits_to_keep` slice ran a batched product that
    took 40% of a training step on CPU."""
    batch = collate(seqs, pad_id, device)
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal.model(**batch, use_cache=False).last_hidden_state  # [B, T, H], after the final norm
    n = hidden.shape[1]
    # position -(L+1) predicts the first answer token ... position -2 the last
    rows = [hidden[i, n - L - 1 : n - 1] for i, L in enumerate(n_answer)]
    logits = causal.lm_head(torch.cat(rows, 0))
    cap = getattr(causal.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return list(logits.float().split(list(n_answer), 0))


def make_target(logits: torch.Tensor, temperature: float, top_k: int) -> dict[str, torch.Tensor]:
    """A cached distribution: log-probs of the top-k tokens + one rest bucket (or all tokens)."""
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    if not top_k or top_k >= logp.shape[-1]:
        return {"logp": logp.to(torch.float16).cpu()}
    vals, idx = logp.topk(top_k, dim=-1)
    rest = torch.log1p(-vals.exp().sum(-1).clamp(max=1 - 1e-6))
    return {"idx": idx.cpu(), "logp": torch.cat([vals, rest[:, None]], -1).cpu()}


def kl_to_target(student_logits: torch.Tensor, target: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """Sum over positions of KL(target || student_T), on the target's partition."""
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    p_logp = target["logp"].to(s.device).float()
    if "idx" not in target:
        return (p_logp.exp() * (p_logp - s)).sum()
    idx = target["idx"].to(s.device)
    s_top = s.gather(-1, idx)
    s_rest = torch.logsumexp(s.scatter(-1, idx, float("-inf")), dim=-1, keepdim=True)
    q_logp = torch.cat([s_top, s_rest], -1)
    return (p_logp.exp() * (p_logp - q_logp)).sum()


@torch.no_grad()
def cache_targets(model: Any, items: list[Item], temperature: float, top_k: int, pad_id: int, device: torch.device, batch_size: int = 8, progress: Callable[[int], None] | None = None) -> None:
    """Fill ``item.target`` from the base model (adapter disabled) on ``item.teacher_ids``."""
    order = sorted(range(len(items)), key=lambda i: len(items[i].teacher_ids or items[i].input_ids))
    with model.disable_adapter():
        for b in range(0, len(order), batch_size):
            chunk = [items[i] for i in order[b : b + batch_size]]
            logits = answer_logits(model, [it.teacher_ids or it.input_ids for it in chunk], [it.n_answer for it in chunk], pad_id, device)
            for it, lg in zip(chunk, logits):
                it.target = make_target(lg, temperature, top_k)
            if progress:
                progress(len(chunk))


def answer_tokens(it: Item) -> torch.Tensor:
    """The item's answer tokens (the teacher's answer, as generated; for a probe the base's)."""
    return torch.tensor(it.input_ids[len(it.input_ids) - it.n_answer :], dtype=torch.long)


def batch_loss(model: Any, items: Sequence[Item], temperature: float, pad_id: int, device: torch.device, hard: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, int]:
    """Summed KL over the answer tokens of ``items`` and the token count.

    With ``hard`` (a list to append to), the summed cross-entropy of the student (T=1)
    on the answer tokens is appended: the hard-label term of Hinton et al.'s
    distillation, computed on the same forward pass."""
    logits = answer_logits(model, [it.input_ids for it in items], [it.n_answer for it in items], pad_id, device)
    total = sum(kl_to_target(lg, it.target, temperature) for lg, it in zip(logits, items))  # type: ignore[arg-type]
    if hard is not None:
        hard.append(sum(F.cross_entropy(lg, answer_tokens(it).to(lg.device), reduction="sum") for lg, it in zip(logits, items)))  # type: ignore[arg-type]
    return total, sum(it.n_answer for it in items)  # type: ignore[return-value]


@torch.no_grad()
def answer_match(model: Any, items: Sequence[Item], pad_id: int, device: torch.device, margin: float = 0.0, batch_size: int = 8) -> float:
    """Share of the items whose every answer token is the student's top choice, by at
    least `margin` (logit gap to the next token; teacher-forced):
    1.0 means greedy decoding reproduces each trained answer, with room for the served
    model's quantisation to move the logits a little."""
    if not items:
        return 1.0
    hit = 0
    for b in range(0, len(items), batch_size):
        chunk = items[b : b + batch_size]
        logits = answer_logits(model, [it.input_ids for it in chunk], [it.n_answer for it in chunk], pad_id, device)
        for lg, it in zip(logits, chunk):
            want = answer_tokens(it).to(lg.device)
            top2 = lg.topk(2, dim=-1)
            gap = torch.where(top2.indices[:, 0] == want, top2.values[:, 0] - top2.values[:, 1], torch.full_like(top2.values[:, 0], -1.0))
            hit += bool((gap >= margin).all()) if margin > 0 else bool((top2.indices[:, 0] == want).all())
    return hit / len(items)


def lora_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k}


def load_lora_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v)


@dataclass
class TrainResult:
    steps: int
    best_step: int
    best_val: float | None
    stopped: str  # why the loop ended
    cut_short: bool = False  # the time budget ended it: the outcome depends on the machine's speed
    history: list[dict[str, float]] = field(default_factory=list)  # per step: loss terms, lr
    val_history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train(
    model: Any,
    train_items: list[Item],
    val_items: list[Item],
    probe_items: list[Item],
    cfg: Any,
    pad_id: int,
    device: torch.device,
    *,
    on_step: Callable[[dict[str, float]], None] | None = None,
    should_stop: Callable[[], None] | None = None,
) -> TrainResult:
    """Optimise the LoRA weights of ``model`` (a peft model).

    Training ends at ``max_steps`` or, checked every ``eval_every`` steps, on
    ``stop_when``: "converged" (the student reproduces at least ``converge_match`` of
    the training answers token for token; the weights it ends with are kept) or
    "val_loss" (early stopping on the held-out loss; the best validation state is
    restored). Neither depends on the machine's speed.

    ``should_stop`` is called every step and raises to abort (SIGTERM).
    """
    T, lam = cfg.temperature, cfg.locality_weight
    converge = cfg.stop_when == "converged"
    rng = random.Random(cfg.seed)
    params = [p for n, p in model.named_parameters() if p.requires_grad]
    assert params and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad), "only LoRA weights may train"
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    total = cfg.max_steps

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10%
        if step < cfg.warmup_steps:
            return cfg.learning_rate * (step + 1) / cfg.warmup_steps
        prog = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, prog))))

    def batches(items: list[Item], size: int):  # endless shuffled epochs
        while True:
            order = items[:]
            rng.shuffle(order)
            for i in range(0, len(order), size):
                yield order[i : i + size]

    def evaluate_val() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            d, nd = 0.0, 0
            for i in range(0, len(val_items), cfg.batch_size):
                s, n = batch_loss(model, val_items[i : i + cfg.batch_size], T, pad_id, device)
                d, nd = d + float(s), nd + n
            loc, nl = batch_loss(model, probe_items[: cfg.probe_batch_size], cfg.locality_temperature, pad_id, device) if probe_items else (0.0, 1)
        model.train()
        dv = T * T * d / max(1, nd)
        lv = float(loc) / max(1, nl)
        # The training objective on held-out questions and probes.
        return {"val_distill": dv, "val_locality": lv, "val_loss": dv + lam * lv}

    res = TrainResult(0, 0, None, "max_steps")
    best_state = lora_state(model)
    bad_evals = 0
    t0 = time.monotonic()
    dist_it = batches(train_items, cfg.batch_size)
    probe_it = batches(probe_items, cfg.probe_batch_size) if probe_items else None
    model.train()
    if val_items:
        # Step 0 (no adapter) is logged but is no candidate: "learn nothing" is the
        # gate's call (efficacy gain), not early stopping's.
        res.val_history.append({"step": 0, **evaluate_val()})
    for step in range(total):
        if should_stop:
            should_stop()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        hard: list[torch.Tensor] | None = [] if cfg.hard_label_weight > 0 else None
        s, n = batch_loss(model, next(dist_it), T, pad_id, device, hard)
        distill = T * T * s / max(1, n)
        loss = distill
        if hard:
            loss = loss + cfg.hard_label_weight * hard[0] / max(1, n)
        loc = torch.zeros(())
        if probe_it is not None and lam > 0:
            ls, ln = batch_loss(model, next(probe_it), cfg.locality_temperature, pad_id, device)
            loc = ls / max(1, ln)
            loss = loss + lam * loc
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        res.steps = step + 1
        rec = {"step": step + 1, "loss": loss.item(), "distill": distill.item(), "locality": loc.item(), "lr": lr_at(step), "grad_norm": float(gnorm), "t": round(time.monotonic() - t0, 2)}
        res.history.append(rec)
        if on_step:
            on_step(rec)
        if converge and (step + 1) % cfg.eval_every == 0:
            match = answer_match(model, train_items, pad_id, device, cfg.converge_margin)
            model.train()
            v = evaluate_val() if val_items else {}
            res.val_history.append({"step": step + 1, "train_match": match, **v})
            if match >= cfg.converge_match - 1e-9:
                res.stopped = (f"converged: {100 * match:.0f}% of the training answers reproduced "
                               f"(margin {cfg.converge_margin:g}) at step {step + 1}")
                break
        elif val_items and (step + 1) % cfg.eval_every == 0:
            v = evaluate_val()
            res.val_history.append({"step": step + 1, **v})
            if res.best_val is None or v["val_loss"] < res.best_val - 1e-4:
                res.best_val, res.best_step, bad_evals = v["val_loss"], step + 1, 0
                best_state = lora_state(model)
            else:
                bad_evals += 1
                if bad_evals >= cfg.patience:
                    res.stopped = f"early stop: no validation improvement in {bad_evals} checks"
                    break
        if cfg.train_time_budget_s and time.monotonic() - t0 > cfg.train_time_budget_s:
            res.stopped = f"time budget {cfg.train_time_budget_s:.0f}s reached"
            res.cut_short = True
            break
    if converge:
        res.best_step = res.steps  # the weights training ended with
        if val_items and res.val_history[-1]["step"] != res.steps:
            res.val_history.append({"step": res.steps, **evaluate_val()})
        res.best_val = res.val_history[-1].get("val_loss") if res.val_history else None
    elif val_items:
        # A final check so the last steps are not lost when they were the best.
        if res.val_history[-1]["step"] != res.steps:
            v = evaluate_val()
            res.val_history.append({"step": res.steps, **v})
            if v["val_loss"] < (res.best_val if res.best_val is not None else float("inf")) - 1e-4:
                res.best_val, res.best_step = v["val_loss"], res.steps
                best_state = lora_state(model)
        load_lora_state(model, best_state)
    else:
        res.best_step = res.steps
    model.eval()
    res.seconds = time.monotonic() - t0
    return res
