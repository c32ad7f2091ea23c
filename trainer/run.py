"""One consolidation run, start to finish: select → generate → evaluate → distil →
export → evaluate → gate → ship or refuse → report.

Run it as its own process (``knowd consolidate``, or ``python -m trainer
consolidate``): the daemon never imports torch. Safety properties:

* run.json says ``running`` (with the pid) before any work; SIGTERM/SIGINT mark
  it ``interrupted``; a run that died silently is marked ``failed`` by the next start;
* nothing outside the run's folder changes until the gate has passed, and the
  shipping step (publish the version, rewrite live.json, update state) runs with
  the stop signal deferred, so a kill never leaves a half-shipped adapter.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from trainer import adapters as adapters_mod
from trainer import runs
from trainer.config import TrainerConfig
from trainer.errors import Interrupted, TrainerError
from trainer.selection import FactSource, change_key, heldout_facts, select_from_store

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: str
    status: str  # shipped | refused | skipped | interrupted | failed
    reason: str
    run_dir: Path
    adapter_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("shipped", "refused", "skipped")

    @property
    def exit_code(self) -> int:
        """The process exit code of a finished run: 143 when interrupted, else 0."""
        return 143 if self.status == "interrupted" else 0

    def lines(self, as_json: bool = False) -> list[str]:
        """What `consolidate` prints: the status and reason (and report path), or one JSON object."""
        if as_json:
            return [json.dumps({"run_id": self.run_id, "status": self.status, "reason": self.reason,
                                "adapter_version": self.adapter_version,
                                "report": str(self.report) if self.report else None, "wall_s": self.wall_s})]
        return [f"{self.status}: {self.reason}"] + ([f"report: {self.report}"] if self.report else [])


# --- signals -------------------------------------------------------------------


class _Stopper:
    """SIGTERM/SIGINT → Interrupted at the next safe point; deferred inside `critical()`."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._critical = 0
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. embedded use): no handler
                pass

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = signal.Signals(signum).name
        if not self._critical:
            raise Interrupted(f"{self.requested} received")

    def check(self) -> None:
        if self.requested and not self._critical:
            raise Interrupted(f"{self.requested} received")

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1


class _Progress:
    """One tqdm bar per phase (or nothing)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None

    def phase(self, name: str, total: int | None) -> Callable[[int], None]:
        self.close()
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=f"consolidate: {name}", unit="it", dynamic_ncols=True, leave=True)
            return lambda n=1: self.bar.update(n)
        return lambda n=1: None

    def postfix(self, **kw: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**kw, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --- the run ---------------------------------------------------------------------------


def consolidate(
    cfg: TrainerConfig | dict[str, Any] | None,
    store: FactSource,
    data_dir: str | os.PathLike,
    progress: bool = True,
    *,
    generator: Any = None,
    base_gguf: Callable[[], str | os.PathLike] | None = None,
) -> RunResult:
    """Consolidate the facts that changed since the last successful run.

    ``store`` needs ``facts_changed_since`` and ``list_facts`` (``stores.sqlite.Store``
    or ``trainer.selection.MemoryStore``). ``generator`` replaces the text generator
    (tests). ``base_gguf`` gives the base model's GGUF file; it is called only when the
    run needs it (llama.cpp generation, the first conversion to a transformers
    checkpoint), so a run with nothing to do never asks for the model. Raises `RunBusyError` if another run holds the lock; any other error is
    recorded as a failed run and re-raised; SIGTERM/SIGINT return status ``interrupted``.
    """
    if not isinstance(cfg, TrainerConfig):
        cfg = TrainerConfig.from_dict(cfg)
    data_dir = Path(data_dir)
    stopper = _Stopper()
    stopper.install()
    handle: runs.RunHandle | None = None
    prog = _Progress(progress)
    try:
        handle = runs.start_run(data_dir, cfg.to_dict())
        return _run(cfg, store, data_dir, handle, stopper, prog, generator, base_gguf)
    except Interrupted as e:
        prog.close()
        assert handle is not None
        if handle.record.get("status") != "running":  # the run had already finished
            return _result(handle)
        phase = handle.record.get("phase")
        handle.finish("interrupted", f"{e} during phase {phase!r}; the live adapter was not touched")
        return _result(handle)
    except BaseException as e:
        prog.close()
        if handle is not None and handle.record.get("status") == "running":
            handle.finish("failed", f"{type(e).__name__}: {e} (phase {handle.record.get('phase')!r}); the live adapter was not touched")
        raise
    finally:
        stopper.restore()
        if handle is not None:
            handle.release()


def _result(h: runs.RunHandle) -> RunResult:
    r = h.record
    rep = r.get("report")
    return RunResult(h.id, r["status"], r.get("reason", ""), h.dir, r.get("adapter_version"), r.get("metrics", {}), Path(rep) if rep else None, r.get("wall_s", 0.0))


def _run(
    cfg: TrainerConfig, store: FactSource, data_dir: Path, h: runs.RunHandle, stopper: _Stopper, prog: _Progress,
    generator: Any, base_gguf: Callable[[], str | os.PathLike] | None,
) -> RunResult:
    from trainer import datagen

    state = runs.load_state(data_dir)
    since = runs.parse_iso(state.get("since"))

    # 1. selection ------------------------------------------------------------
    h.phase("select")
    sel = select_from_store(
        store, since, state["consolidated"].keys(),
        replay_fraction=cfg.replay_fraction, max_replay=cfg.max_replay_facts,
        max_new=cfg.max_new_facts, seed=cfg.seed, done=state["consolidated"],
    )
    # locality probes come from facts no adapter was trained on (earlier nights' facts are in scope)
    held = heldout_facts(store, [*sel.ids(), *state["consolidated"]], cfg.heldout_fact_probes, cfg.seed)
    in_run = set(sel.ids())
    earlier = [f for f in store.list_facts(current_only=True) if f.id in state["consolidated"] and f.id not in in_run]
    h.update(
        since=runs.iso(since),
        facts=[{"id": s.id, "kind": s.kind, "text": s.fact.text} for s in sel.facts],
        pending=[f.id for f in sel.pending],
    )
    if not sel.new:
        h.finish("skipped", f"no facts changed since {runs.iso(since) or 'the beginning'}")
        return _result(h)
    live_scope = _live_scope(cfg, data_dir)  # how the model the run starts from is served now
    scope = _scope(cfg, sel, live_scope)
    stopper.check()

    # 2. models ----------------------------------------------------------------
    h.phase("load")
    import torch

    from trainer import distill, evaluate, export, lm

    model, tok, base_path = lm.load_base(cfg, data_dir, base_gguf)
    dev = next(model.parameters()).device
    live = adapters_mod.live(data_dir)
    resume: Path | None = None
    if cfg.resume_from_live and live:
        vdir = adapters_mod.adapters_dir(data_dir) / live["version"]
        if (vdir / "adapter_config.json").is_file():
            resume = vdir
    model = lm.attach_lora(model, cfg, resume)
    torch.manual_seed(cfg.seed)
    base_fingerprint = _fingerprint(model)
    engine = cfg.generator
    if engine == "auto":
        engine = "llama_cpp" if dev.type == "cpu" and not cfg.base_model_dir else "hf"
    if generator is not None:
        gen = generator
        engine = "custom"
    elif engine == "llama_cpp":
        gen = lm.LlamaCppGenerator(lm.base_gguf(base_gguf), n_ctx=2048, threads=cfg.threads, seed=cfg.seed)
    else:
        gen = lm.HFGenerator(model, tok, dev, cfg.eval_batch_size)
    if resume is not None and hasattr(gen, "set_adapter"):
        gen.set_adapter(Path(live["gguf"]), live.get("scale", 1.0))  # type: ignore[index]
    h.update(base_model=str(base_path), device=str(dev), generator=engine, resumed_from=live["version"] if resume else None)
    stopper.check()

    # 3. data -------------------------------------------------------------------------
    h.phase("generate")
    cache_dir = runs.consolidation_dir(data_dir) / "facts"
    cache = datagen.load_fact_cache(cache_dir, [s.id for s in sel.replay])
    n_gen = sum(1 for s in sel.facts if s.id not in cache)
    # one tick per generated text: story + 2 question lists + ~1 teacher answer per question
    tick = prog.phase("generate data", n_gen * (3 + 1 + cfg.n_paraphrase + cfg.n_multihop))
    _set_progress(gen, tick)
    facts = datagen.generate_fact_data(sel.facts, gen, cfg, cache, progress=None if hasattr(gen, "progress") else tick)
    probes = datagen.build_probes(cfg, held, cfg.seed)
    stopper.check()
    ref = "adapter" if resume is not None else "base"
    tick = prog.phase("reference answers to probes", len(probes))
    _set_progress(gen, tick)
    datagen.fill_base_answers(probes, gen, cfg, which_split="train", which="base")
    datagen.fill_base_answers(probes, gen, cfg, which_split="eval", which=ref, scope=live_scope)
    datagen.save_data(h.dir / "data.json", facts, probes, {"heldout_facts": [f.id for f in held], "probe_reference": ref})
    counts = _counts(facts, probes)
    h.update(data=counts)
    stopper.check()

    # 4. before -----------------------------------------------------------------------------
    h.phase("evaluate before")
    n_eval = sum(len(fd.questions) for fd in facts)
    ev_probes = [p for p in probes if p.split == "eval"]
    tick = prog.phase("evaluate base/teacher/before", 2 * n_eval + (n_eval + len(ev_probes) if resume else 0))
    _set_progress(gen, tick)
    ref_scores = evaluate.score_probes(ev_probes, [p.base_answer for p in ev_probes])
    if resume is None:  # the run starts from the base model: the references are its answers
        base_ev = evaluate.evaluate(gen, "base", facts, probes, cfg, include_probes=False)
        base_ev["metrics"].update(ref_scores)
        base_ev["metrics"]["locality_kl"] = 0.0
        before_ev = {**base_ev, "which": "base (no live adapter)"}
    else:
        base_ev = evaluate.evaluate(gen, "base", facts, probes, cfg)
        base_ev["metrics"]["locality_kl"] = 0.0
        before_ev = evaluate.evaluate(gen, "adapter", facts, probes, cfg, include_probes=False, scope=live_scope)
        before_ev["metrics"].update(ref_scores)
        before_ev["metrics"]["locality_kl"] = evaluate.locality_kl(model, tok, probes, dev, limit=cfg.locality_kl_probes)
    # retention: earlier nights' facts not in this run, as the live adapter knows them now
    retained = datagen.retention_data(earlier) if resume is not None else []
    retention: dict[str, Any] = {}
    if retained:
        retention["before"] = evaluate.evaluate(gen, "adapter", retained, [], cfg, include_probes=False, scope=live_scope)
        before_ev["metrics"].update(_retention_metrics(retention["before"]))
    teacher_ev = evaluate.evaluate(gen, "base", facts, probes, cfg, with_story=True, include_probes=False)
    h.update(metrics={"base": base_ev["metrics"], "teacher": teacher_ev["metrics"], "before": before_ev["metrics"]})
    stopper.check()

    # 5. training items + cached teacher/base distributions -------------------------------------
    h.phase("teacher targets")
    train_items, val_items, probe_items = _build_items(facts, probes, tok, cfg)
    if not train_items:
        _save_eval(h.dir, base_ev, teacher_ev, before_ev, None)
        h.finish("refused", "no training questions survived the teacher filter (the teacher could not answer any generated question correctly)")
        _write_report(h, data_dir)
        return _result(h)
    tick = prog.phase("teacher targets", len(train_items) + len(val_items) + len(probe_items))
    distill.cache_targets(model, train_items + val_items, cfg.temperature, cfg.teacher_top_k, tok.pad_token_id, dev, progress=tick)
    distill.cache_targets(model, probe_items, cfg.locality_temperature, cfg.teacher_top_k, tok.pad_token_id, dev, progress=tick)
    stopper.check()

    # 6. train ---------------------------------------------------------------------------------
    h.phase("train")
    tick = prog.phase("train", cfg.max_steps)

    def on_step(rec: dict[str, float]) -> None:
        tick(1)
        prog.postfix(loss=f"{rec['loss']:.3f}", kl=f"{rec['distill']:.3f}", loc=f"{rec['locality']:.3f}")

    tr = distill.train(model, train_items, val_items, probe_items, cfg, tok.pad_token_id, dev, on_step=on_step, should_stop=stopper.check)
    train_info = {k: v for k, v in asdict(tr).items() if k not in ("history", "val_history")}
    train_info.update(n_train=len(train_items), n_val=len(val_items), n_probe=len(probe_items))
    runs.atomic_write_json(h.dir / "train_log.json", {"history": tr.history, "val_history": tr.val_history})
    if _fingerprint(model) != base_fingerprint:
        raise TrainerError("base weights changed during training (only LoRA weights may move)")
    h.update(train=train_info)
    stopper.check()

    # 7. export (into the run folder: nothing outside it changes before the gate) -----------------------
    h.phase("export")
    adir = h.dir / "adapter"
    model.save_pretrained(adir)
    if cfg.export_gguf or engine == "llama_cpp":
        export.export_gguf(adir, adir / "adapter.gguf", num_layers=model.get_base_model().config.num_hidden_layers)
    stopper.check()

    # 8. after ---------------------------------------------------------------------------------------------
    h.phase("evaluate after")
    tick = prog.phase("evaluate after", n_eval + len(ev_probes))
    _set_progress(gen, tick)
    if hasattr(gen, "set_adapter"):
        gen.set_adapter(adir / "adapter.gguf", cfg.lora_scale)
    # the adapter as served (routed by its scope) decides; the adapter on every prompt is reported too
    after_ev = evaluate.evaluate(gen, "adapter", facts, probes, cfg, scope=scope)
    after_ev["metrics"]["locality_kl"] = evaluate.locality_kl(model, tok, probes, dev, limit=cfg.locality_kl_probes)
    unrouted_ev = evaluate.evaluate(gen, "adapter", facts, probes, cfg) if scope is not None else after_ev
    if retained:
        retention["after"] = evaluate.evaluate(gen, "adapter", retained, [], cfg, include_probes=False, scope=scope)
        after_ev["metrics"].update(_retention_metrics(retention["after"]))
    _save_eval(h.dir, base_ev, teacher_ev, before_ev, after_ev, unrouted_ev, retention)
    metrics = {"base": base_ev["metrics"], "teacher": teacher_ev["metrics"], "before": before_ev["metrics"], "after": after_ev["metrics"]}
    if scope is not None:
        metrics["after_unrouted"] = unrouted_ev["metrics"]
        metrics["router"] = _router_stats(scope, facts, probes)
    h.update(metrics=metrics)
    prog.close()
    if hasattr(gen, "close"):
        gen.close()
    stopper.check()

    # 9. gate and ship ----------------------------------------------------------------------------------------
    from trainer.gate import decide

    h.phase("gate")
    decision = decide(base_ev["metrics"], before_ev["metrics"], after_ev["metrics"], cfg, cut_short=tr.cut_short)
    h.update(gate=decision.to_dict())
    if decision.ship:
        with stopper.critical():
            v = _ship(h, data_dir, cfg, sel, facts, metrics, decision, base_path, scope)
            state = runs.load_state(data_dir)
            for s in sel.facts:
                state["consolidated"][s.id] = change_key(s.fact)
            if not sel.pending:
                state["since"] = h.record["started_at"]
            state["last_success"] = runs.iso(runs.utcnow())
            state["last_run"] = h.id
            runs.save_state(data_dir, state)
            datagen.update_fact_cache(cache_dir, facts)
            h.finish("shipped", decision.reason, adapter_version=v)
    else:
        h.finish("refused", decision.reason + (f"; live adapter stays {live['version']}" if live else "; no adapter is live"))
    _write_report(h, data_dir)
    return _result(h)


def _set_progress(gen: Any, tick: Callable[[int], None] | None) -> None:
    if hasattr(gen, "progress"):
        gen.progress = tick


def _fingerprint(model: Any) -> float:
    """A cheap checksum of the frozen base weights (sum of a strided sample of each)."""
    import torch

    total = 0.0
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" not in n:
                total += float(p.detach().flatten()[:: 997].double().sum())
    return total


def _counts(facts: list[Any], probes: list[Any]) -> dict[str, Any]:
    c: dict[str, Any] = {"facts": len(facts), "probes": len(probes)}
    for t in ("efficacy", "paraphrase", "multihop"):
        qs = [q for fd in facts for q in fd.of(t)]
        c[t] = {s: sum(1 for q in qs if q.split == s) for s in ("train", "eval", "dropped")}
        c[t]["teacher_ok"] = sum(1 for q in qs if q.teacher_ok)
        c[t]["generated"] = len(qs)
    return c


def _build_items(facts: list[Any], probes: list[Any], tok: Any, cfg: TrainerConfig) -> tuple[list[Any], list[Any], list[Any]]:
    """Distillation items (student prompt without story, ~story_keep_fraction with it),
    split into train/validation (the validation split from generated questions only),
    and locality items from the train probes."""
    from trainer.distill import Item, encode

    rng = random.Random(cfg.seed)
    items, must_learn = [], []
    for fd in facts:
        for q in fd.questions:
            if q.split != "train":
                continue
            ans = tok(q.teacher_raw + q.end, add_special_tokens=False)["input_ids"][: cfg.answer_max_new_tokens + 1]
            # unlearning: the target is the base model on the fact's own sentence, no story
            teacher_ids = encode(tok, q.prompt(None if q.type == "unlearn" else fd.story), ans, cfg.max_seq_len)
            keep_story = rng.random() < cfg.story_keep_fraction
            student_ids = teacher_ids if keep_story else encode(tok, q.prompt(None), ans, cfg.max_seq_len)
            item = Item(student_ids, len(ans), "distill", fd.fact_id, teacher_ids=teacher_ids)
            # A fact's own sentence (and an unlearning cloze) is what the run must teach:
            # never held out. Validation comes from the generated questions.
            (must_learn if q.type in ("efficacy", "unlearn") else items).append(item)
    rng.shuffle(items)
    n_val = int(round(cfg.val_fraction * (len(items) + len(must_learn)))) if len(items) + len(must_learn) >= 8 else 0
    val, train = items[:n_val], items[n_val:] + must_learn
    rng.shuffle(train)
    loc = []
    for p in probes:
        if p.split != "train" or not p.base_raw:
            continue
        end = "." if p.kind in ("heldout", "prose") else "\n"
        ans = tok(p.base_raw + end, add_special_tokens=False)["input_ids"][: cfg.answer_max_new_tokens + 1]
        loc.append(Item(encode(tok, p.prompt, ans, cfg.max_seq_len), len(ans), "locality"))
    return train, val, loc


def _retention_metrics(ev: dict[str, Any]) -> dict[str, Any]:
    m = ev["metrics"]
    return {"retention": m["retention"], "n_retention": m["n_retention"]}


def _save_eval(run_dir: Path, base: Any, teacher: Any, before: Any, after: Any, after_unrouted: Any = None,
               retention: dict[str, Any] | None = None) -> None:
    runs.atomic_write_json(run_dir / "eval.json", {"base": base, "teacher": teacher, "before": before, "after": after,
                                                   "after_unrouted": after_unrouted, "retention": retention or {}})


def _scope(cfg: TrainerConfig, sel: Any, live_scope: Any) -> Any:
    """The names the new adapter answers for: this run's facts and, when it continues
    the live adapter, the live adapter's scope (None without routing)."""
    if not cfg.routing:
        return None
    from trainer.scope import Scope

    scope = Scope.from_facts([s.fact for s in sel.facts])
    return scope.merge(live_scope) if cfg.resume_from_live else scope


def _live_scope(cfg: TrainerConfig, data_dir: Path) -> Any:
    """The live adapter's scope, as the serving backend routes it now: None (the adapter
    on every prompt) without routing or for an adapter shipped without scope.json."""
    live = adapters_mod.live(data_dir)
    if not cfg.routing or not live:
        return None
    from trainer.scope import SCOPE_FILE, Scope

    return Scope.load(adapters_mod.adapters_dir(data_dir) / live["version"] / SCOPE_FILE)


def _router_stats(scope: Any, facts: list[Any], probes: list[Any]) -> dict[str, Any]:
    """Recall on the held-out questions about the run's facts (they must reach the adapter)
    and false-positive rate on the locality probes (they must not)."""
    from trainer.prompts.answer import question_of
    from trainer.scope import router_stats

    ins = [question_of(q.prompt(None)) for fd in facts for q in fd.questions if q.split == "eval" and q.type != "efficacy"]
    outs = [question_of(p.prompt) for p in probes if p.split == "eval"]
    return router_stats(scope, ins, outs)


def _ship(h: runs.RunHandle, data_dir: Path, cfg: TrainerConfig, sel: Any, facts: list[Any], metrics: dict[str, Any], decision: Any, base_path: Path, scope: Any = None) -> str:
    """Copy the adapter with its config, data, metrics and scope into adapters/, make it live."""
    adir = adapters_mod.adapters_dir(data_dir)
    for old in adir.glob(".staging-*") if adir.is_dir() else []:
        shutil.rmtree(old, ignore_errors=True)  # left by a run killed while shipping (we hold the lock)
    staging = adir / f".staging-{h.id}"
    shutil.copytree(h.dir / "adapter", staging)
    for name in ("data.json", "eval.json", "train_log.json"):
        if (h.dir / name).exists():
            shutil.copy2(h.dir / name, staging / name)
    runs.atomic_write_json(staging / "trainer_config.json", cfg.to_dict())
    runs.atomic_write_json(staging / "metrics.json", metrics)
    if scope is not None:
        from trainer.scope import SCOPE_FILE

        scope.save(staging / SCOPE_FILE)
    meta = {
        "run_id": h.id,
        "base_model": cfg.model_name if not cfg.base_model_dir else str(base_path),
        "facts": [{"id": s.id, "kind": s.kind, "text": s.fact.text} for s in sel.facts],
        "metrics": metrics,
        "gate": decision.to_dict(),
        "resumed_from": h.record.get("resumed_from"),
    }
    v = adapters_mod.publish(data_dir, staging, meta, make_live=True, scale=cfg.lora_scale)
    return v.version


def _write_report(h: runs.RunHandle, data_dir: Path) -> None:
    try:
        from trainer.report import write_report

        md = write_report(h.dir)
        h.update(report=str(md))
    except Exception as e:  # a broken report must not undo a shipped adapter
        log.exception("report failed")
        h.update(report_error=f"{type(e).__name__}: {e}")
