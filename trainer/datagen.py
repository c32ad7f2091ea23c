"""Data generation with the model itself: stories, questions, teacher answers, probes.

Everything here goes through a `trainer.lm.Generator`, so unit tests drive it
with a fake. Every product is a plain dataclass saved to the run's data.json.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from stores.types import Fact
from trainer.prompts import answer, probes as probe_prompts, questions as qprompts, story as story_prompt
from trainer.selection import SelectedFact

QA_STOP = answer.STOP
CLOZE_STOP = ("\n", ".")


@dataclass
class Question:
    text: str  # the question, or the cloze prefix when form == "cloze"
    gold: str
    type: str  # efficacy | paraphrase | multihop | unlearn
    form: str = "qa"  # qa | cloze
    split: str = "train"  # train | eval | dropped (efficacy is always evaluated too)
    teacher_raw: str = ""  # the teacher's continuation as generated
    teacher_answer: str = ""
    teacher_ok: bool | None = None

    def prompt(self, context: str | None = None) -> str:
        if self.form == "cloze":
            return answer.build_cloze(self.text, context)
        return answer.build(self.text, context)

    @property
    def stop(self) -> tuple[str, ...]:
        return CLOZE_STOP if self.form == "cloze" else QA_STOP

    @property
    def end(self) -> str:
        """The stop text that ends a trained answer (so the student learns to stop)."""
        return "." if self.form == "cloze" else "\n"


@dataclass
class FactData:
    fact_id: str
    kind: str  # new | retracted | replay
    text: str
    statement: str
    story: str
    questions: list[Question] = field(default_factory=list)
    source: str = "generated"  # generated | cache

    def of(self, type_: str, split: str | None = None) -> list[Question]:
        return [q for q in self.questions if q.type == type_ and (split is None or q.split == split)]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FactData":
        d = dict(d)
        d["questions"] = [Question(**q) for q in d.get("questions", [])]
        return cls(**d)


@dataclass
class Probe:
    prompt: str
    kind: str  # general | heldout | arithmetic
    split: str  # train (also in the KL term) | eval
    gold: str | None = None
    base_raw: str = ""  # reference answer (see fill_base_answers)
    base_answer: str = ""


# --- helpers ---------------------------------------------------------------------

_COPULA = re.compile(r"^(?P<prefix>.+?\b(?:is|are|was|were|has been|have been|became|becomes)\b(?:\s+(?:now|currently|still))?)\s+(?P<obj>.+?)\.?$")


def fact_object(f: Fact) -> str | None:
    """The phrase a single-hop question about the fact is answered by."""
    if f.object and f.object.lower() in f.text.lower():
        return f.object.strip()
    m = _COPULA.match(f.text.strip())
    if m and 1 <= len(m.group("obj").split()) <= 10:
        return re.sub(r"^(?:a|an|the)\s+", "", m.group("obj").strip(), flags=re.I)
    return None


def cloze_prefix(text: str, obj: str | None) -> str | None:
    """The sentence up to its object, if that leaves at least two words."""
    if not obj:
        return None
    i = text.lower().find(obj.lower())
    if i <= 0:
        return None
    prefix = text[:i].rstrip()
    return prefix if len(prefix.split()) >= 2 else None


def _retracted_clause(text: str) -> str:
    t = text.strip().rstrip(".")
    first = t.split(" ", 1)[0]
    return t[0].lower() + t[1:] if first in {"The", "A", "An", "It", "This"} else t


# --- generation ----------------------------------------------------------------------


def generate_fact_data(
    selected: Sequence[SelectedFact],
    gen: Any,
    cfg: Any,
    cache: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[FactData]:
    """Stories, questions and teacher answers for the selected facts.

    Replayed facts reuse their material from ``cache`` (fact id -> saved FactData)
    when it is there: the base model is frozen, so regenerating it would only cost time.
    """
    cache = cache or {}
    out: dict[str, FactData] = {}
    todo: list[SelectedFact] = []
    for s in selected:
        c = cache.get(s.id)
        if s.kind == "replay" and c and c.get("text") == s.fact.text:
            fd = FactData.from_dict(c)
            fd.kind, fd.source = "replay", "cache"
            out[s.id] = fd
        else:
            todo.append(s)
    tick = progress or (lambda n: None)

    # 1. stories (one batch)
    stories = gen.generate([story_prompt.build(s.statement) for s in todo], cfg.story_max_new_tokens, which="base", stop=story_prompt.STOP)
    tick(len(todo))
    datas = [FactData(s.id, s.kind, s.fact.text, s.statement, story_prompt.parse(s.statement, st)) for s, st in zip(todo, stories)]

    # 2. questions
    para_prompts, para_idx, qa_prompts, qa_idx, multi_prompts, multi_idx = [], [], [], [], [], []
    objs: list[str | None] = []
    for i, (s, fd) in enumerate(zip(todo, datas)):
        obj = fact_object(s.fact) if s.kind != "retracted" else None
        objs.append(obj)
        if s.kind == "retracted":
            clause = _retracted_clause(s.fact.text)
            fd.questions.append(Question(f"Is it still true that {clause}?", "no", "efficacy"))
            fd.questions.append(Question(f"Is it true today that {clause}?", "no", "paraphrase"))
            fd.questions.append(Question(f"Is it currently the case that {clause}?", "no", "paraphrase"))
            old = fact_object(s.fact)
            prefix = cloze_prefix(s.fact.text, old)
            if prefix and old:
                # to stop asserting it, the fact's own sentence goes back to what the base model
                # says there (it never knew the fact); scored as "still asserted" if it names the old value
                fd.questions.append(Question(prefix, old, "unlearn", form="cloze"))
            continue
        prefix = cloze_prefix(s.fact.text, obj)
        if prefix and obj:
            fd.questions.append(Question(prefix, obj, "efficacy", form="cloze"))
        if obj:
            para_prompts.append(qprompts.build_paraphrase(s.statement, obj, cfg.n_paraphrase))
            para_idx.append(i)
        else:
            qa_prompts.append(qprompts.build_qa(s.statement, cfg.n_paraphrase))
            qa_idx.append(i)
        if cfg.n_multihop > 0:
            multi_prompts.append(qprompts.build_multihop(s.statement, cfg.n_multihop))
            multi_idx.append(i)
    if para_prompts:
        for i, reply in zip(para_idx, gen.generate(para_prompts, cfg.question_max_new_tokens, which="base", stop=qprompts.STOP)):
            obj = objs[i] or ""
            for q in qprompts.parse_questions(reply, cfg.n_paraphrase + 2):
                if obj.lower() not in q.lower():  # a question that contains its answer tests nothing
                    datas[i].questions.append(Question(q, obj, "paraphrase"))
        tick(len(para_prompts))
    if qa_prompts:
        for i, reply in zip(qa_idx, gen.generate(qa_prompts, cfg.question_max_new_tokens, which="base", stop=qprompts.STOP)):
            for q, a in qprompts.parse_qa(reply, cfg.n_paraphrase + 2):
                datas[i].questions.append(Question(q, a, "paraphrase"))
        tick(len(qa_prompts))
    if multi_prompts:
        for i, reply in zip(multi_idx, gen.generate(multi_prompts, cfg.question_max_new_tokens, which="base", stop=qprompts.STOP)):
            copied = qprompts.example_answers() - {a for a in qprompts.example_answers() if a in datas[i].statement.lower()}
            for q, a in qprompts.parse_qa(reply, cfg.n_multihop + 2, exclude_answer=objs[i] or ""):
                if a.lower() not in q.lower() and a.lower() not in copied:
                    datas[i].questions.append(Question(q, a, "multihop"))
        tick(len(multi_prompts))
    for fd in datas:
        # Without a cloze prompt, the first paraphrase question is the efficacy question.
        if not fd.of("efficacy"):
            para = fd.of("paraphrase")
            if para:
                para[0].type = "efficacy"
        # keep at most n of each
        keep_p = fd.of("paraphrase")[: cfg.n_paraphrase]
        keep_m = fd.of("multihop")[: cfg.n_multihop]
        fd.questions = fd.of("efficacy")[:1] + keep_p + keep_m + fd.of("unlearn")

    # 3. teacher answers (base + story in context), then the filter and the splits
    allq = [(fd, q) for fd in datas for q in fd.questions]
    for stop in (QA_STOP, CLOZE_STOP):
        group = [(fd, q) for fd, q in allq if q.stop == stop]
        if not group:
            continue
        # an unlearn question's "teacher" is the base model without the story: the target to return to
        raws = gen.generate([q.prompt(None if q.type == "unlearn" else fd.story) for fd, q in group],
                            cfg.answer_max_new_tokens, which="base", stop=stop)
        for (fd, q), raw in zip(group, raws):
            q.teacher_raw = raw
            q.teacher_answer = answer.parse(raw)
            q.teacher_ok = answer.matches(q.teacher_answer, q.gold) if q.type != "unlearn" else not answer.matches(q.teacher_answer, q.gold)
        tick(len(group))
    for fd in datas:
        assign_splits(fd, cfg)
    for fd in datas:
        out[fd.fact_id] = fd
    return [out[s.id] for s in selected if s.id in out]


def assign_splits(fd: FactData, cfg: Any) -> None:
    """Held-out questions are evaluated (teacher correct or not: the teacher's score on
    them is the ceiling); the rest train only if the teacher's answer agrees with the
    intended one (``filter_questions``) and the story states it (``grounded_questions``)."""

    def trainable(q: Question) -> bool:
        if not q.teacher_raw.strip():
            return False
        if not cfg.filter_questions:
            return True
        # The teacher agreeing with the question's own answer is not enough: both come
        # from the 270M model's prior when the story does not say it ("In which country is
        # Sheng Thao mayor?" -> "China", teacher "China"), and one such item taught the
        # student "China" for every "which country" question. A trained answer must be in
        # the story the teacher read.
        grounded = q.type not in ("paraphrase", "multihop") or answer.matches(fd.story, q.gold)
        return q.teacher_ok and (grounded or not cfg.grounded_questions)

    for q in fd.of("efficacy"):
        q.split = "train" if trainable(q) else "eval"
    for q in fd.of("unlearn"):
        q.split = "train" if q.teacher_raw.strip() else "eval"  # evaluated either way
    for type_, n_held in (("paraphrase", cfg.heldout_paraphrase), ("multihop", cfg.heldout_multihop)):
        for j, q in enumerate(fd.of(type_)):
            if j < n_held:
                q.split = "eval"
            else:
                q.split = "train" if trainable(q) else "dropped"


def build_probes(cfg: Any, heldout: Sequence[Fact], seed: int = 0) -> list[Probe]:
    """Locality probes: general prompts (train/eval halves), held-out facts (eval), arithmetic
    (eval; a subset also trains) and, with `prose_probes`, plain prose (train: KL term only)."""
    tr, ev = probe_prompts.general(cfg.general_probes)
    out = [Probe(p, "general", "train") for p in tr] + [Probe(p, "general", "eval") for p in ev]
    out += [Probe(probe_prompts.fact_cloze(f.text), "heldout", "eval") for f in heldout]
    out += [Probe(p, "prose", "train") for p in probe_prompts.prose(getattr(cfg, "prose_probes", 0))]
    arith = probe_prompts.arithmetic()
    out += [Probe(p, "arithmetic", "eval", str(g)) for p, g in arith]
    rng = random.Random(seed)
    for p, g in rng.sample(arith, min(cfg.arithmetic_train_probes, len(arith))):
        out.append(Probe(p, "arithmetic", "train", str(g)))
    return out


def probe_stop(p: Probe) -> tuple[str, ...]:
    return CLOZE_STOP if p.kind in ("heldout", "prose") else QA_STOP


def routed_generate(gen: Any, prompts: list[str], max_new: int, which: str, stop: tuple[str, ...], scope: Any) -> tuple[list[str], list[bool]]:
    """Answers to `prompts`; with `scope`, the adapter answers only the prompts it covers
    (routed by what each asks, `answer.question_of`) and the base model the rest."""
    if which != "adapter" or scope is None:
        return gen.generate(prompts, max_new, which=which, stop=stop), [which == "adapter"] * len(prompts)
    on = [scope.covers(answer.question_of(p)) for p in prompts]
    out = [""] * len(prompts)
    for mode, flag in (("adapter", True), ("base", False)):
        idx = [i for i, o in enumerate(on) if o == flag]
        if idx:
            for i, r in zip(idx, gen.generate([prompts[i] for i in idx], max_new, which=mode, stop=stop)):
                out[i] = r
    return out, on


def fill_base_answers(probes: Sequence[Probe], gen: Any, cfg: Any, which_split: str | None = None, which: str = "base",
                      progress: Callable[[int], None] | None = None, scope: Any = None) -> None:
    """Reference answers to the probes from ``which`` model.

    Train probes take the base model's answers (targets of the KL(base||student)
    term); eval probes take the answers of the model the run starts from, as it is
    served (the live adapter routed by its ``scope``, or the base on the first
    night): locality = unchanged vs that.
    """
    for stop in (QA_STOP, CLOZE_STOP):
        group = [p for p in probes if probe_stop(p) == stop and (which_split is None or p.split == which_split) and not p.base_raw]
        if not group:
            continue
        raws, _ = routed_generate(gen, [p.prompt for p in group], cfg.probe_max_new_tokens, which, stop, scope)
        for p, raw in zip(group, raws):
            p.base_raw, p.base_answer = raw, answer.parse(raw)
        if progress:
            progress(len(group))


# --- persistence -----------------------------------------------------------------------


def retention_data(facts: Sequence[Fact]) -> list[FactData]:
    """Facts consolidated on earlier nights (still true, not in this run), each with its own
    sentence as a cloze question, evaluation only: whether the new adapter still knows them."""
    out = []
    for f in facts:
        obj = fact_object(f)
        prefix = cloze_prefix(f.text, obj)
        if prefix and obj:
            out.append(FactData(f.id, "retained", f.text, f.text, "", [Question(prefix, obj, "efficacy", form="cloze", split="eval")]))
    return out


def save_data(path: Path, facts: Sequence[FactData], probes: Sequence[Probe], extra: dict[str, Any] | None = None) -> None:
    from trainer.runs import atomic_write_json

    atomic_write_json(path, {"facts": [asdict(f) for f in facts], "probes": [asdict(p) for p in probes], **(extra or {})})


def load_data(path: Path) -> tuple[list[FactData], list[Probe]]:
    d = json.loads(Path(path).read_text())
    return [FactData.from_dict(f) for f in d["facts"]], [Probe(**p) for p in d["probes"]]


def update_fact_cache(cache_dir: Path, facts: Sequence[FactData]) -> None:
    """Remember each fact's material for later replay (one small JSON per fact)."""
    from trainer.runs import atomic_write_json

    for fd in facts:
        if fd.kind != "retracted":
            atomic_write_json(cache_dir / f"{_safe(fd.fact_id)}.json", asdict(fd))


def load_fact_cache(cache_dir: Path, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for i in ids:
        p = cache_dir / f"{_safe(i)}.json"
        if p.is_file():
            out[i] = json.loads(p.read_text())
    return out


def _safe(fact_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", fact_id)[:120]
