"""The store audit: how good the knowledge is, not only the answers.

For a stream with a gold state, at each checkpoint (every question time, or every
document when the stream has no questions):

* precision  - of the facts current then, the share that is well-formed and true then
               by the gold (or true either way, in an announced change's window);
* recall     - of the gold facts true then and already said by some text, the share
               that a well-formed current fact states;
* stale rate - of the facts current then, the share the gold says is no longer true;

and over the whole run, for the operations the store logged:

* collateral make_false - a fact made false while the gold says it was still true;
* reinforce precision   - a reinforcement whose document states the fact.

Gold states: the generated worlds (`world_gold`, from the generator's own states) and
hand-written files (bench/gold/samples.yaml, written before knowd was tuned on it).
A store fact matches a gold fact when it names each of the gold fact's entities (one
alias of each list, whole words), one of its cue words, and has the same polarity: a
text that says something ended ("no longer", "left", "previously") matches only gold
statements of something ended (`past: true`).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from stores.errors import InputError
from stores.sqlite import Store

NEGATIVE = re.compile(
    r"\b(no longer|not|never|stepped down|steps down|resign\w*|left|leaves|leaving|retire\w*|former|formerly|"
    r"previously|until|anymore|replac\w*|succeed\w*|gave up|gives up|did not|didn't|no more|quit)\b|n't\b",
    re.I,
)
_PRONOUN_START = re.compile(r"^(he|she|it|they|this|that|these|those|his|her|its|their|we|i|you)\b", re.I)


@dataclass
class GoldFact:
    id: str
    text: str
    entities: list[list[str]]  # one alias list per entity the fact names
    cues: list[str]  # words (or word beginnings) one of which a matching fact uses
    start: datetime | None  # true from (None: before any text)
    end: datetime | None = None  # until (None: still true at the end)
    unsure: tuple[datetime, datetime] | None = None  # either truth is accepted in this window
    past: bool = False  # a statement that something ended or was earlier
    optional: bool = False  # counted as true when present, not required for recall

    def truth(self, t: datetime) -> bool | None:
        if self.unsure and self.unsure[0] <= t < self.unsure[1]:
            return None
        if self.start is not None and t < self.start:
            return False
        return not (self.end is not None and t >= self.end)

    def stated_by(self, t: datetime) -> bool:
        """Whether some text could have said it by t (what was true before the first text is not asked)."""
        return self.start is not None and (self.start <= t or (self.unsure is not None and self.unsure[0] <= t))

    def matches(self, text: str) -> bool:
        low = text.lower()
        for alts in self.entities:
            if not any(re.search(rf"(?<!\w){re.escape(a.lower())}(?!\w)", low) for a in alts):
                return False
        if not any(c.lower() in low for c in self.cues):
            return False
        return bool(NEGATIVE.search(text)) == self.past


def well_formed(text: str) -> bool:
    """A sentence: capitalised, ended, three words or more, no unresolved pronoun first,
    no repeated word or empty brackets (the marks of a text assembled from slots)."""
    t = text.strip()
    if len(t.split()) < 3 or not t[:1].isupper() or t[-1] not in ".!?":
        return False
    if _PRONOUN_START.match(t) or "()" in t:
        return False
    words = re.findall(r"\w+", t.lower())
    return not any(a == b for a, b in zip(words, words[1:]) if len(a) > 2)


@dataclass
class Checkpoint:
    time: str
    current: int
    true: int
    stale: int
    unsupported: int
    malformed: int
    recall_hit: int
    recall_total: int
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def precision(self) -> float:
        return self.true / self.current if self.current else 1.0

    @property
    def stale_rate(self) -> float:
        return self.stale / self.current if self.current else 0.0

    @property
    def recall(self) -> float:
        return self.recall_hit / self.recall_total if self.recall_total else 1.0


def judge(text: str, gold: list[GoldFact], t: datetime) -> str:
    """true / stale / unsupported / malformed, for a fact current at t."""
    if not well_formed(text):
        return "malformed"
    hits = [g for g in gold if g.matches(text)]
    if not hits:
        return "unsupported"
    return "true" if any(g.truth(t) in (True, None) for g in hits) else "stale"


def checkpoint(facts: list[str], gold: list[GoldFact], t: datetime) -> Checkpoint:
    """Audit the texts of the facts current at t."""
    counts = {"true": 0, "stale": 0, "unsupported": 0, "malformed": 0}
    ex: dict[str, list[str]] = {k: [] for k in counts}
    for text in facts:
        v = judge(text, gold, t)
        counts[v] += 1
        ex[v].append(text)
    wanted = [g for g in gold if not g.optional and g.stated_by(t) and g.truth(t) is True]
    hit = [g for g in wanted if any(g.matches(x) and well_formed(x) for x in facts)]
    ex["missed"] = [g.text for g in wanted if g not in hit]
    return Checkpoint(t.isoformat(), len(facts), counts["true"], counts["stale"], counts["unsupported"], counts["malformed"],
                      len(hit), len(wanted), ex)


def op_quality(store: Store, gold: list[GoldFact], doc_texts: dict[str, str]) -> dict[str, Any]:
    """Collateral make_false and reinforce precision over the store's live history."""
    mf = rf = collateral = good = 0
    for f in store.list_facts(current_only=False):
        for h in f.history:
            if h.reverted or h.op not in ("make_false", "reinforce"):
                continue
            hits = [g for g in gold if g.matches(f.text)]
            if h.op == "make_false":
                mf += 1
                still = [g for g in hits if g.truth(h.time) is True and g.truth(h.time + timedelta(days=1)) is True]
                if still and not any(g.truth(h.time) is False for g in hits):
                    collateral += 1
            else:
                rf += 1
                doc = doc_texts.get(h.doc_id or "", "").lower()
                if any(_states(g, doc) for g in hits):
                    good += 1
    return {
        "make_false": mf, "collateral_make_false": collateral, "collateral_rate": round(collateral / mf, 4) if mf else 0.0,
        "reinforce": rf, "reinforce_precision": round(good / rf, 4) if rf else None,
    }


def _states(g: GoldFact, doc: str) -> bool:
    return all(any(a.lower() in doc for a in alts) for alts in g.entities) and any(c.lower() in doc for c in g.cues)


def summary(points: list[Checkpoint]) -> dict[str, float]:
    """Means over checkpoints, and the worst checkpoint of each measure."""
    if not points:
        return {}
    n = len(points)
    return {
        "checkpoints": n,
        "precision": round(sum(p.precision for p in points) / n, 4), "precision_min": round(min(p.precision for p in points), 4),
        "recall": round(sum(p.recall for p in points) / n, 4), "recall_min": round(min(p.recall for p in points), 4),
        "stale_rate": round(sum(p.stale_rate for p in points) / n, 4), "stale_rate_max": round(max(p.stale_rate for p in points), 4),
        "current_facts_last": points[-1].current,
    }


# ----------------------------------------------------------------------------- gold states
def _when(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=timezone.utc)
    return datetime.fromisoformat(str(v).replace("Z", "+00:00")).astimezone(timezone.utc)


def load_gold(path: str | Path) -> list[GoldFact]:
    """A gold file: YAML or JSON with a `facts` list (bench/gold/samples.yaml shows the form)."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        out = []
        for g in raw["facts"]:
            u = g.get("unsure")
            out.append(GoldFact(
                str(g["id"]), g["text"], [[str(a) for a in e] for e in g["entities"]], [str(c) for c in g["cues"]],
                _when(g.get("from")), _when(g.get("until")), (_when(u[0]), _when(u[1])) if u else None,  # type: ignore[arg-type]
                bool(g.get("past")), bool(g.get("optional")),
            ))
        return out
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: not a gold file ({e})") from None


def dump_gold(gold: list[GoldFact], path: str | Path) -> None:
    def enc(g: GoldFact) -> dict[str, Any]:
        d = asdict(g)
        d["from"] = g.start.isoformat() if g.start else None
        d["until"] = g.end.isoformat() if g.end else None
        d["unsure"] = [g.unsure[0].isoformat(), g.unsure[1].isoformat()] if g.unsure else None
        for k in ("start", "end"):
            d.pop(k)
        return d

    Path(path).write_text(json.dumps({"facts": [enc(g) for g in gold]}, indent=1), encoding="utf-8")


_WORLD_CUES = {
    "company": ["work", "started at", "joined", "run"], "boss": ["boss"], "coworker": ["coworker", "works with", "work with"],
    "salary": ["earn"], "hours": ["work"], "hobby": ["enjoy", "took up", "hobby"], "role": ["as a", "as an"],
    "runs": ["run"], "company_hours": ["everyone"], "pay": ["pay"],
}


def world_gold(world: Any) -> list[GoldFact]:
    """The gold facts of a generated world (bench/harness/world.py): every relation of every
    person and company in each state, merged over time; and, as optional statements of
    what ended, each old value a transition replaced (single-hop texts say them)."""
    from bench.harness.world import money

    spans: dict[tuple[str, ...], list[tuple[datetime, datetime | None]]] = {}
    states = world.states
    for i, (t0, st) in enumerate(states):
        t1 = states[i + 1][0] if i + 1 < len(states) else None

        def add(key: tuple[str, ...]) -> None:
            spans.setdefault(key, []).append((t0, t1))  # noqa: B023 - used at once

        for p in st.people:
            add(("company", p, st.company[p]))
            if st.boss(p):
                add(("boss", p, st.boss(p)))
            for q in st.coworkers(p):
                add(("coworker", *sorted([p, q])))
            add(("salary", p, money(st.salary(p))))
            add(("hours", p, st.hours(p)))
            for h in st.hobbies[p]:
                add(("hobby", p, h))
            if st.role[p] != "manager":
                add(("role", p, st.role[p]))
        for c, m in st.managers.items():
            add(("runs", m, c))
        for c, h in st.hours_of.items():
            add(("company_hours", c, h))
        for (c, r), n in st.pay.items():
            if r != "manager":
                add(("pay", c, r + "s", money(n)))
    gold: list[GoldFact] = []
    for key, ss in spans.items():
        merged: list[tuple[datetime, datetime | None]] = []
        for a, b in sorted(ss, key=lambda s: s[0]):
            if merged and merged[-1][1] == a:
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        kind, *vals = key
        for a, b in merged:
            gold.append(GoldFact(f"{kind}:{'|'.join(vals)}", " ".join(vals), [[v] for v in vals], _WORLD_CUES[kind], a, b))
    for tr in world.transitions:
        for (p, rel), (old, new) in tr.changes.items():
            olds = old if isinstance(old, (frozenset, set, list)) else [old]
            news = new if isinstance(new, (frozenset, set, list)) else [new]
            for o in olds:
                if o is None or o in news:
                    continue
                if rel == "company":
                    gold.append(GoldFact("left", f"{p} left {o}", [[p], [o]], ["left"], tr.time, past=True, optional=True))
                elif rel == "coworkers":
                    gold.append(GoldFact("no-longer", f"{o} no longer works with {p}", [[p], [o]], ["work"], tr.time, past=True, optional=True))
                elif rel == "boss":
                    gold.append(GoldFact("not-boss", f"{o} is not {p}'s boss", [[p], [o]], ["boss"], tr.time, past=True, optional=True))
                elif rel == "hobbies":
                    gold.append(GoldFact("gave-up", f"{p} gave up {o}", [[p], [o]], ["gave up"], tr.time, past=True, optional=True))
    return gold


# ----------------------------------------------------------------------------- runs
def run_audit(
    stream: Any, gold: list[GoldFact], systems: list[str], env_for: Any, out: Path, progress: Any = lambda s: None,
) -> dict[str, Any]:
    """Replay the stream's documents through each fact-store system and audit its store at
    every checkpoint. `env_for(name)` gives the system's BenchEnv. Writes audit.json,
    audit.md and audit.png to `out`."""
    import shutil
    import time

    from bench.harness.systems import SYSTEMS

    docs = sorted(stream.documents, key=lambda d: d.time)
    times = sorted({q.time for q in stream.questions})
    if not times:  # no questions: after every document, and once all announced changes are due
        times = sorted({d.time for d in docs})
        times.append(times[-1] + timedelta(days=90))
    texts = {d.id: f"{d.title or ''}\n{d.text}" for d in docs}
    result: dict[str, Any] = {"documents": len(docs), "gold_facts": len(gold), "systems": {}}
    out.mkdir(parents=True, exist_ok=True)
    for name in systems:
        env = env_for(name)
        if env.workdir.exists():
            shutil.rmtree(env.workdir)
        system = SYSTEMS[name](env)
        if system.store is None:
            raise InputError(f"system {name!r} keeps no fact store to audit")
        points: list[Checkpoint] = []
        di, t0 = 0, time.perf_counter()
        try:
            for cp in times:
                while di < len(docs) and docs[di].time <= cp:
                    system.add_document(docs[di])
                    di += 1
                current = [f.text for f in system.store.list_facts(current_only=False) if f.truth_at(cp) is True]
                points.append(checkpoint(current, gold, cp))
                progress(f"[{name}] audit {cp.date()}: {len(current)} facts, precision {points[-1].precision:.2f}, "
                         f"recall {points[-1].recall:.2f}, stale {points[-1].stale_rate:.2f}")
            ops = op_quality(system.store, gold, texts)
        finally:
            system.close()
        result["systems"][name] = {
            "summary": summary(points), "operations": ops, "wall_seconds": round(time.perf_counter() - t0, 2),
            "checkpoints": [asdict(p) | {"precision": p.precision, "recall": p.recall, "stale_rate": p.stale_rate} for p in points],
        }
    (out / "audit.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    (out / "audit.md").write_text(audit_markdown(result), encoding="utf-8")
    audit_plot(result, out / "audit.png")
    return result


def audit_markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Store audit: {result.get('stream', '')}",
        "",
        f"{result['documents']} documents, {result['gold_facts']} gold facts. Means over checkpoints (worst in brackets).",
        "",
        "| system | checkpoints | precision | recall | stale rate | make_false | collateral | reinforce | reinforce precision | facts at the end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["systems"].items():
        s, o = r["summary"], r["operations"]
        rp = "–" if o["reinforce_precision"] is None else f"{o['reinforce_precision']:.2f}"
        lines.append(
            f"| {name} | {s.get('checkpoints', 0)} | {s.get('precision', 0):.3f} ({s.get('precision_min', 0):.2f}) | "
            f"{s.get('recall', 0):.3f} ({s.get('recall_min', 0):.2f}) | {s.get('stale_rate', 0):.3f} ({s.get('stale_rate_max', 0):.2f}) | "
            f"{o['make_false']} | {o['collateral_make_false']} | {o['reinforce']} | {rp} | {s.get('current_facts_last', 0)} |"
        )
    for name, r in result["systems"].items():
        last = r["checkpoints"][-1] if r["checkpoints"] else None
        if not last:
            continue
        lines += ["", f"## {name}: the last checkpoint ({last['time'][:10]})", ""]
        for kind in ("stale", "unsupported", "malformed", "missed"):
            xs = last["examples"].get(kind, [])
            lines.append(f"- {kind} ({len(xs)}): " + ("; ".join(f"\"{x}\"" for x in xs[:8]) if xs else "none"))
    return "\n".join(lines) + "\n"


def audit_plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for name, r in result["systems"].items():
        xs = list(range(len(r["checkpoints"])))
        for ax, key in zip(axes, ("precision", "recall", "stale_rate")):
            ax.plot(xs, [c[key] for c in r["checkpoints"]], marker="o", label=name)
    for ax, title in zip(axes, ("precision of current facts", "recall of gold facts", "stale rate")):
        ax.set_title(title)
        ax.set_xlabel("checkpoint")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[2].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle(str(result.get("stream", "")), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
