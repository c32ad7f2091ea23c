"""The one configuration object for consolidation.

Every hyper-parameter lives here with its help text (``python -m trainer config``
prints them).  ``config.yaml``'s ``consolidation:`` section is passed to
:meth:`TrainerConfig.from_dict`; a ``preset`` key picks a starting point
(``small`` for CPU, ``gpu`` for a CUDA machine) that the other keys override.

It is a pydantic dataclass: each value is type-checked (a string where a number
belongs is an error naming the key), and it is still a dataclass (``fields``,
``replace``, ``asdict``). No heavy imports here: agent/config.py validates this
section with the rest of config.yaml when knowd starts.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import field
from typing import Any

from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass

from trainer.errors import ConfigError


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


DEFAULT_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(config=ConfigDict(extra="forbid"))
class TrainerConfig:
    """Hyper-parameters of one consolidation run (defaults = the ``small`` CPU preset)."""

    preset: str = _f("small", "Preset the other values start from: 'small' (CPU, ~10 facts in ~15 min on 2 cores) or 'gpu'.")

    # --- model -------------------------------------------------------------
    model_name: str = _f("gemma3-270m", "Bundled base model to consolidate into (assembled from its pip package).")
    base_model_dir: str | None = _f(None, "Use this Hugging Face checkpoint directory (model + tokenizer) as the base instead of the bundled GGUF; the GGUF export then needs `base_gguf` only for checks.")
    device: str = _f("auto", "'auto' (cuda if available, else cpu), 'cpu' or 'cuda'.")
    dtype: str = _f("auto", "'auto' (float32 on CPU, bfloat16 on CUDA), 'float32' or 'bfloat16'. LoRA weights are always kept in float32.")
    generator: str = _f("auto", "Text generation engine for data and evaluation: 'llama_cpp' (fast on CPU, evaluates the exported GGUF adapter, i.e. what ships), 'hf' (transformers; CUDA, or a `base_model_dir` without GGUF) or 'auto' (llama_cpp on CPU with the bundled model, else hf).")
    threads: int = _f(0, "CPU threads for torch and llama.cpp (0 = all cores but one, at least 1). Their thread pools spin-wait, so oversubscribing shared cores (the daemon's own LLM, other jobs) makes them several times slower, not faster.")
    seed: int = _f(0, "Seed for selection, splits, LoRA init and shuffling.")

    # --- selection ---------------------------------------------------------
    max_new_facts: int = _f(0, "Cap on new/changed facts per run, most recently changed first (0 = no cap). Facts left out stay pending for the next run.")
    replay_fraction: float = _f(1.0, "Share of earlier consolidated (still true) facts replayed in this run so earlier nights are not overwritten. Measured on 3 CLARK nights: replaying 2 of 9 earlier facts, the adapter kept 0 of the 7 others (a new 'X is the mayor of Kenner' overwrote 'Karen Bass is the mayor of Los Angeles'); the gate's retention check refuses such an adapter.")
    max_replay_facts: int = _f(20, "Cap on replayed facts per run (keeps the nightly cost bounded as the store grows; facts beyond it are measured by the retention check).")
    resume_from_live: bool = _f(True, "Start the new LoRA from the live adapter (if any) so knowledge accumulates night to night; otherwise start from zero.")

    # --- data generation ---------------------------------------------------
    story_max_new_tokens: int = _f(64, "Length cap for each generated background story.")
    n_paraphrase: int = _f(6, "Single-hop questions generated per fact (answer = the fact's object).")
    n_multihop: int = _f(8, "Multi-hop questions generated per fact (need the fact plus other knowledge).")
    heldout_paraphrase: int = _f(1, "Of the accepted single-hop questions, how many per fact are held out for evaluation (paraphrase generalisation).")
    heldout_multihop: int = _f(1, "Of the accepted multi-hop questions, how many per fact are held out for evaluation (portability).")
    question_max_new_tokens: int = _f(80, "Length cap for one question-generation call.")
    filter_questions: bool = _f(True, "Drop generated questions whose teacher (story in context) answer disagrees with the intended answer.")
    grounded_questions: bool = _f(True, "Train a generated question only if its intended answer appears in the fact's story (an answer from the small model's prior, agreed by its teacher, is often false and spreads to other questions).")
    general_probes: int = _f(40, "General short-answer locality prompts taken from the built-in list (half for the KL term, half for evaluation).")
    heldout_fact_probes: int = _f(10, "Locality prompts made from current facts that are not in this run.")
    prose_probes: int = _f(20, "Plain-prose continuations (trainer/prompts/probes.py PROSE) added to the KL(base||student) term: a broader probe set than short questions (training only).")
    arithmetic_train_probes: int = _f(30, "How many of the a+b= prompts (a, b in 0..9) also enter the KL term; all 100 are evaluated.")

    # --- distillation ------------------------------------------------------
    lora_r: int = _f(8, "LoRA rank.")
    lora_alpha: float = _f(16.0, "LoRA alpha (scale = alpha / r).")
    lora_dropout: float = _f(0.0, "LoRA dropout.")
    target_modules: list[str] = _f(DEFAULT_TARGET_MODULES, "Modules that get LoRA: attention and MLP projections only (never embeddings or lm_head).")
    lora_layers: list[int] = _f([], "Decoder layers (0-based) that get LoRA; empty = all. The literature finds edits in mid-layer MLPs move unrelated behaviour least.")
    temperature: float = _f(2.0, "Distillation temperature T; the KL(teacher||student) term is scaled by T^2.")
    hard_label_weight: float = _f(1.0, "Weight of a cross-entropy term on the teacher's greedy answer tokens, added to the distillation KL (Hinton et al.'s hard targets): it widens the student's lead on the taught answer, which the quantised served model needs.")
    locality_weight: float = _f(2.0, "lambda: weight of KL(base||student) on the locality probes (short questions, a+b=, prose). Routing keeps unrelated prompts off the adapter; this term keeps the general knowledge an in-scope question also needs (a multi-hop question: 'In which country does X play?').")
    locality_temperature: float = _f(1.0, "Temperature of the locality KL term.")
    story_keep_fraction: float = _f(0.0, "Share of student samples that keep the story in context.")
    teacher_top_k: int = _f(256, "Teacher/base distributions are cached as their top-k tokens plus one 'rest' bucket (exact KL over that partition); 0 = full vocabulary.")
    answer_max_new_tokens: int = _f(12, "Length cap for a teacher answer (the tokens the KL is taken on).")
    learning_rate: float = _f(2e-3, "AdamW learning rate for the LoRA weights.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    warmup_steps: int = _f(4, "Linear learning-rate warm-up steps.")
    batch_size: int = _f(6, "Distillation samples per step.")
    probe_batch_size: int = _f(8, "Locality probes per step.")
    max_steps: int = _f(400, "Upper bound on optimiser steps.")
    eval_every: int = _f(20, "Check the stopping test every this many steps.")
    stop_when: str = _f("converged", "Stopping test besides max_steps: 'converged' (the student reproduces at least converge_match of the training answers token for token, greedy and teacher-forced; the final weights are kept) or 'val_loss' (early stopping on the held-out validation loss with `patience`; the best state is restored).")
    converge_match: float = _f(1.0, "stop_when=converged: the share of training answers that must be reproduced.")
    converge_margin: float = _f(1.0, "stop_when=converged: a reproduced answer's every token must lead the next candidate by this many logits (the served model is quantised: a bare lead can flip there).")
    patience: int = _f(3, "Stop after this many validations without improvement of the validation loss (distillation + lambda * locality on held-out items); the best LoRA weights are restored.")
    val_fraction: float = _f(0.15, "Share of distillation samples held out as the validation split.")
    grad_clip: float = _f(1.0, "Gradient-norm clip.")
    max_seq_len: int = _f(384, "Token cap for a training sequence (story context is cut from the left beyond it).")
    train_time_budget_s: float = _f(0.0, "Cut training short after this many seconds (0 = no budget). Training ends on max_steps or early stopping, so the same run gives the same adapter on any machine; a run cut short by the budget is marked so and the gate refuses it.")

    # --- scope -------------------------------------------------------------
    routing: bool = _f(True, "Evaluate and gate the adapter as it is served: applied only to requests that name something it was trained on (trainer/scope.py; llm.adapter: routed), the base model answering the rest. Off: every request reaches the adapter.")

    # --- evaluation and gate -----------------------------------------------
    eval_max_new_tokens: int = _f(12, "Greedy decoding length for evaluation answers.")
    probe_max_new_tokens: int = _f(6, "Greedy decoding length for locality probe answers (short: a long rambling continuation would count as 'changed' for any tiny difference).")
    locality_kl_probes: int = _f(40, "How many eval probes the mean KL(base||model) is computed on (general and held-out first, then arithmetic).")
    eval_batch_size: int = _f(16, "Prompts per generation batch.")
    gate_min_locality: float = _f(0.98, "Ship only if at least this share of locality probes keep the answer of the model the run started from (as served: with `routing`, the router sends a probe to the adapter only if it names something in scope).")
    gate_max_arithmetic_drop: float = _f(1.0, "Ship only if arithmetic accuracy (as served) is at most this many percentage points below the base model's.")
    gate_min_efficacy_gain: float = _f(1.0, "Ship only if efficacy improved by at least this many percentage points over the starting model (an adapter that teaches nothing is not worth its risk); negative disables.")

    gate_min_retention: float = _f(0.9, "Ship only if the share of earlier nights' facts (not trained on this run) the adapter still completes is at least this fraction of the live adapter's share.")
    gate_max_asserted: float = _f(0.0, "Ship only if at most this share of the facts made false since they were consolidated are still asserted (their own sentence completed with the old value).")

    # --- export ------------------------------------------------------------
    export_gguf: bool = _f(True, "Export a shipped adapter as a llama.cpp GGUF LoRA (needed for hot-loading).")
    lora_scale: float = _f(1.0, "Scale written to live.json for the LLM backend.")

    # ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "TrainerConfig":
        """Build from a config section: apply ``preset`` first, then the other keys.

        Unknown keys raise :class:`ConfigError` naming the key.
        """
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        for k in d:
            if k not in names:
                raise ConfigError(f"consolidation: unknown key {k!r} (see `python -m trainer config` for the valid keys)")
        preset = d.get("preset", "small")
        if preset not in PRESETS:
            raise ConfigError(f"consolidation: unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        values: dict[str, Any] = dict(PRESETS[preset])
        values.update(d)
        values["preset"] = preset
        return _checked(lambda: cls(**values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **kw: Any) -> "TrainerConfig":
        return _checked(lambda: dataclasses.replace(self, **kw))

    def validate(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ConfigError(f"consolidation: {name} {why} (got {getattr(self, name)!r})")

        for name in ("replay_fraction", "story_keep_fraction", "val_fraction", "gate_min_locality", "gate_min_retention", "gate_max_asserted", "converge_match"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(name, "must be between 0 and 1")
        for name in ("lora_r", "batch_size", "probe_batch_size", "eval_every", "eval_batch_size", "max_steps"):
            if getattr(self, name) < 1:
                bad(name, "must be at least 1")
        if self.temperature <= 0 or self.locality_temperature <= 0:
            bad("temperature", "must be positive")
        if self.device not in ("auto", "cpu", "cuda"):
            bad("device", "must be 'auto', 'cpu' or 'cuda'")
        if self.stop_when not in ("converged", "val_loss"):
            bad("stop_when", "must be 'converged' or 'val_loss'")
        if self.generator not in ("auto", "llama_cpp", "hf"):
            bad("generator", "must be 'auto', 'llama_cpp' or 'hf'")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            bad("dtype", "must be 'auto', 'float32' or 'bfloat16'")
        forbidden = {"embed_tokens", "lm_head"} & set(self.target_modules)
        if forbidden:
            raise ConfigError(f"consolidation: target_modules must not include {sorted(forbidden)}: LoRA goes on attention and MLP projections only")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _checked(build: Any) -> TrainerConfig:
    """`build()`, with its type errors and the range checks of `validate` as ConfigError."""
    try:
        cfg = build()
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(section)"
        raise ConfigError(f"consolidation: {key}: {first['msg'].lower()} (got {first.get('input')!r})") from None
    cfg.validate()
    return cfg


#: Presets: starting values that ``from_dict`` overrides key by key.
PRESETS: dict[str, dict[str, Any]] = {
    # The defaults above are the small CPU preset.
    "small": {},
    # A CUDA machine: more questions per fact, more steps, no time budget.
    "gpu": {
        "device": "auto",
        "n_paraphrase": 8,
        "n_multihop": 8,
        "heldout_paraphrase": 2,
        "heldout_multihop": 2,
        "story_max_new_tokens": 160,
        "general_probes": 60,
        "arithmetic_train_probes": 50,
        "heldout_fact_probes": 30,
        "max_replay_facts": 50,
        "batch_size": 16,
        "probe_batch_size": 16,
        "locality_kl_probes": 200,
        "max_steps": 600,
        "eval_every": 20,
        "patience": 3,
        "train_time_budget_s": 0.0,
        "eval_batch_size": 64,
        "teacher_top_k": 1024,
    },
}


def parse_sets(sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``--set KEY=VALUE`` overrides as a section dict; values are JSON when they parse as JSON."""
    out: dict[str, Any] = {}
    for s in sets:
        if "=" not in s:
            raise ConfigError(f"--set wants key=value (got {s!r})")
        k, v = s.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def describe() -> str:
    """Every key with its default and help text (for `python -m trainer config`)."""
    lines = []
    for f in dataclasses.fields(TrainerConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"{f.name} = {default!r}\n    {f.metadata.get('help', '')}")
    return "\n".join(lines)
