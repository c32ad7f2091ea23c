"""The chat graph: answer a question from the facts true now, at a time, or over time.

    understand -> the time asked about (now / as of T / history, graphs/time_intent.py)
                  and the retrieval query (a follow-up is searched together with the
                  question before it, and inherits its time)
    retrieve   -> hybrid search (dense + BM25 fused by RRF, graphs/retrieval.py) over
                  the facts true at that time, keeping the relevant ones (close in
                  meaning, or sharing a content word); history questions also see facts
                  that are no longer true, each with its true/false history and sources
    lookup     -> what the store's structure decides (graphs/lookup.py): a choice that a
                  fact true at the time supports, yes/no from a slot's value, or the fact a
                  factoid question asks for, cited; no model call. Otherwise:
    generate   -> free text citing the facts as [n] (streamed token by token), or
    choose     -> the most likely of given choices (multiple choice, by likelihood), or
    choose_set -> the set of right choices (list answers), or
    unknown    -> "I don't know" with no model call, when nothing relevant is known
                  (or the question names something no relevant fact mentions)
    recall     -> closed book (retrieval off): the model answers from its weights alone,
                  with the nightly trainer's own question prompt (graphs/prompts/closed_book.py),
                  so a consolidated adapter is asked the way it learned; choices are scored
                  with no facts in the prompt
    remember   -> the turn joins the conversation (kept per session by a checkpointer)

State, nodes and wiring follow graphs/ingest/ (langchain-ai/memory-agent style).
`ChatAgent` is the entry point for the REPL, the HTTP API and the benchmarks.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from graphs import answer as answering
from graphs import lookup as facts_lookup
from graphs.config import ChatConfig
from graphs.llm import LLM
from graphs.prompts import chat as chat_prompt
from graphs.prompts import closed_book
from graphs.retrieval import Hit, changed_during, hybrid_search
from graphs.text import content_terms
from graphs.time_intent import TimeIntent, parse_time_intent
from stores.errors import KnowdError
from stores.sqlite import Store
from stores.types import Fact, HistoryEntry, truth_runs, utcnow
from stores.vector import FactIndex

AnswerMode = Literal["text", "choice", "set"]
MAX_TURNS = 20  # turns kept per session; only the last one reaches a prompt


class ChatError(KnowdError):
    """A chat request that cannot be answered as asked (e.g. choice mode without choices)."""


# ----------------------------------------------------------------------------- state
@dataclass
class Source:
    """One document behind a fact's truth: the history entry's document and date."""

    doc_id: str | None
    title: str | None
    url: str | None
    date: str | None  # ISO date of the history entry (the document's time)
    truth: bool = True
    op: str = ""


@dataclass
class UsedFact:
    """A fact as shown to the model: numbered [n], with its time note and sources."""

    n: int
    id: str
    text: str
    note: str  # "since 2022-06-01", "from 2020-01-01 until 2022-06-01", or the history
    true_now: bool
    sources: list[Source] = field(default_factory=list)
    similarity: float | None = None  # dense cosine, when the dense route found it


@dataclass
class Turn:
    """One exchange of the conversation."""

    question: str
    answer: str
    named_time: TimeIntent | None = None  # the as-of time the question named (or inherited)
    fact_ids: list[str] = field(default_factory=list)


def _keep_recent(old: list[Turn], new: list[Turn]) -> list[Turn]:
    return (old + new)[-MAX_TURNS:]


class Components(Protocol):
    """What the chat needs from the application (agent.app.App fits)."""

    store: Store
    index: FactIndex
    llm: LLM


@dataclass
class ChatContext:
    """Run-time dependencies handed to every node (LangGraph `context`)."""

    store: Store
    index: FactIndex
    llm: LLM
    cfg: ChatConfig
    now: Callable[[], datetime] = utcnow
    should_stop: Callable[[], bool] | None = None  # polled between streamed tokens


@dataclass
class ChatState:
    # the request (every field is given on each turn, so nothing leaks between turns)
    question: str = ""
    default_time: TimeIntent | None = None  # a time set outside the question: /asof, the API's as_of
    mode: str = "text"  # AnswerMode
    choices: list[str] = field(default_factory=list)
    stream: bool = False
    max_tokens: int | None = None
    closed_book: bool = False  # answer from the model's weights alone (no retrieval)
    # derived
    intent: TimeIntent = field(default_factory=TimeIntent)
    named_time: TimeIntent | None = None  # what a follow-up inherits (never the session default)
    query: str = ""
    follow_up: bool = False
    facts: list[UsedFact] = field(default_factory=list)
    known: bool = False
    answer: str = ""
    chosen: list[str] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)  # UsedFact.n of the facts the answer rests on
    decided: bool = False  # answered from the store's structure (graphs/lookup.py), no model call
    # memory
    turns: Annotated[list[Turn], _keep_recent] = field(default_factory=list)


# ----------------------------------------------------------------------------- helpers
_FOLLOW_UP = re.compile(
    r"^\s*(and|but|also|so|then|what about|how about)\b"
    r"|\b(he|she|him|her|his|hers|they|them|their|it|its|there|that one|the same)\b",
    re.I,
)


def is_follow_up(question: str) -> bool:
    """A question that leans on the previous one: starts with 'and'/'what about', uses a
    pronoun, or is too vague alone (one content word or none: 'And in 2019?')."""
    return bool(_FOLLOW_UP.search(question)) or len(content_terms(question)) <= 1


def _day(t: datetime) -> str:
    return t.date().isoformat()


def _note_and_entries(f: Fact, intent: TimeIntent) -> tuple[str, list[HistoryEntry]]:
    """The time note shown with a fact, and the history entries its sources come from."""
    segs = truth_runs(f)
    if intent.mode == "history":
        return "; ".join(f"{'true' if t else 'false'} from {_day(s)}" for t, s, _, _ in segs), [
            e for *_, es in segs for e in es
        ]
    end, start = intent.end, intent.start or intent.end
    for t, s, u, es in reversed(segs):  # the latest true run that overlaps the window
        if not t or (end is not None and s > end) or (start is not None and u is not None and u <= start):
            continue
        in_time = [e for e in es if end is None or e.time <= end]
        if u is None or (end is not None and u > end):
            return f"since {_day(s)}", in_time
        return f"from {_day(s)} until {_day(u)}", in_time
    return "", []


def _sources(entries: list[HistoryEntry], store: Store, cache: dict[str, Any], limit: int) -> list[Source]:
    """One Source per document (first entry wins), oldest first, at most `limit`."""
    out: list[Source] = []
    seen: set[str | None] = set()
    for e in entries:
        if e.doc_id in seen:
            continue
        seen.add(e.doc_id)
        doc = None
        if e.doc_id:
            if e.doc_id not in cache:
                cache[e.doc_id] = store.get_document(e.doc_id)
            doc = cache[e.doc_id]
        out.append(Source(e.doc_id, doc.title if doc else None, doc.url if doc else None, _day(e.time), e.truth, e.op))
    if len(out) > limit:  # keep the one that made it true and the most recent ones
        out = out[:1] + out[-(limit - 1):]
    return out


def _attribute(answer: str, facts: list[UsedFact], question: str = "") -> list[int]:
    """Facts an answer without [n] markers rests on: those sharing most of their content
    words with it (or containing most of a short answer, e.g. a chosen name). Among those,
    the ones that also match the question win: "Aiko Tanaka" answering "who is the CEO of
    Northwind Traders?" rests on the CEO fact, not on another fact naming her."""
    if not answer or answer.lower().startswith("i don't know"):
        return []
    a = set(content_terms(answer))
    if not a:
        return []
    both = a | set(content_terms(question))
    scored: list[tuple[int, int]] = []
    for u in facts:
        ft = set(content_terms(u.text))
        shared = len(a & ft)
        if ft and shared and (shared / len(ft) >= 0.5 or shared / len(a) >= 0.5):
            scored.append((u.n, len(both & ft)))
    best = max((sc for _, sc in scored), default=0)
    return [n for n, sc in scored if sc >= 0.75 * best]


def _context_lines(facts: list[UsedFact]) -> list[str]:
    return [chat_prompt.fact_line(u.n, u.text, u.note) for u in facts]


def _date_for_choices(intent: TimeIntent) -> str | None:
    """answer.build's date: the day the facts are true on (None = now or history)."""
    return _day(intent.end) if intent.mode == "as_of" and intent.end is not None else None


_MONTH_DAY = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)


def named_terms(question: str) -> set[str]:
    """Capitalised words that name something ('Acme', 'Northwind'), lower-cased: not a
    sentence's first word, not all-caps acronyms (CEO), not months or weekdays."""
    out: set[str] = set()
    for sentence in re.split(r"[.?!]\s+", question):
        words = re.findall(r"\w+", sentence)
        for w in words[1:]:
            if w[0].isupper() and not w.isupper() and w.lower() not in _MONTH_DAY:
                out.add(w.lower())
    return out


def _names_found(question: str, hits: list[Hit], strong: float) -> bool:
    """Whether what the question names appears in the facts found. "Who is the CEO of
    Acme?" over facts about Northwind's CEO is close in meaning yet nothing is known
    about Acme; a very close fact still counts (names can differ: Danish / Denmark)."""
    names = named_terms(question)
    if not names:
        return True
    words = {w for h in hits for w in re.findall(r"\w+", h.fact.text.lower())}
    return bool(names & words) or any((h.dense or 0.0) >= strong for h in hits)


# ----------------------------------------------------------------------------- nodes
def understand(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Time intent and retrieval query. The question's own time wins, then a follow-up
    inherits a time the previous question named ("and the CFO?" after "who was CEO in
    2020?"), then the session's default time, then now. History mode is not inherited:
    "where is it based?" after "what changed about X?" asks about the present."""
    now = runtime.context.now()
    intent = parse_time_intent(state.question, now)
    named = _named(intent)
    prev = state.turns[-1] if state.turns else None
    follow = prev is not None and is_follow_up(state.question)
    if not intent.explicit:
        inherited = None
        if follow and prev is not None:
            # turns sent by an API client carry no time: read it from their text
            inherited = prev.named_time or _named(parse_time_intent(prev.question, now))
        if inherited is not None:
            intent = named = inherited
        elif state.default_time is not None:
            intent = state.default_time
    query = f"{prev.question} {state.question}" if follow and prev is not None else state.question
    # a remembered session keeps the last turn's derived fields: clear those a closed-book
    # turn (which skips retrieve and lookup) would otherwise inherit
    return {"intent": intent, "named_time": named, "query": query, "follow_up": follow, "facts": [], "known": False, "decided": False}


def _named(intent: TimeIntent) -> TimeIntent | None:
    return intent if intent.explicit and intent.mode == "as_of" else None


def retrieve(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    ctx, cfg, intent = runtime.context, runtime.context.cfg, state.intent
    ctx.index.sync(ctx.store)  # facts committed by another thread (the daemon) become visible
    history = intent.mode == "history"
    timed = intent.mode != "now"
    hits: list[Hit] = hybrid_search(
        ctx.store, ctx.index, state.query, cfg.top_k,
        as_of=intent.end if timed else None, since=intent.start if timed else None, include_stale=history,
    )
    # A fact is relevant if close in meaning or sharing a content word with the question;
    # the others stay out of the prompt (a 270M model is easily led off by them).
    relevant = [h for h in hits if (h.dense or 0.0) >= cfg.min_relevance or h.lexical is not None]
    known = bool(relevant) and _names_found(state.question, relevant, cfg.unmatched_name_relevance)
    if state.mode != "text" and not relevant:
        relevant = hits  # a choice is made anyway: give it what there is
    facts: list[Fact] = [h.fact for h in relevant]
    sims = {h.fact.id: h.dense for h in hits}
    if history and facts and cfg.history_extra:
        facts += _related(ctx.store, facts, intent, cfg.history_extra)
        # oldest first: the model reads the story in order
        facts.sort(key=lambda f: min((h.time for h in f.history if not h.reverted), default=f.created_at))
    cache: dict[str, Any] = {}
    used = []
    for n, f in enumerate(facts, 1):
        note, entries = _note_and_entries(f, intent)
        used.append(UsedFact(n, f.id, f.text, note, f.is_current, _sources(entries, ctx.store, cache, cfg.max_sources), sims.get(f.id)))
    return {"facts": used, "known": known}


def _related(store: Store, facts: list[Fact], intent: TimeIntent, limit: int) -> list[Fact]:
    """For history questions: facts about the same subjects, and the facts they were
    rewritten from, so an answer sees each version of what changed."""
    have = {f.id for f in facts}
    subjects = list(dict.fromkeys(s for f in facts[:3] for s in (f.subject,) if s))
    more = store.get_facts([f.supersedes for f in facts if f.supersedes and f.supersedes not in have])
    more += store.facts_by_subject(subjects, limit=limit * 3) if subjects else []
    out: list[Fact] = []
    for f in more:
        if f.id in have:
            continue
        if intent.start is not None and intent.end is not None and not changed_during(f, intent.start, intent.end):
            continue
        have.add(f.id)
        out.append(f)
        if len(out) == limit:
            break
    return out


def lookup(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Answers the store's structure decides (graphs/lookup.py): a choice a fact true at
    the time supports, yes/no from a slot's value, or the fact a factoid question asks
    for. Only when the store has nothing does the model choose or write."""
    ctx, intent = runtime.context, state.intent
    if not ctx.cfg.lookup or (intent.mode == "history" and state.mode != "text"):
        return {"decided": False}
    when = intent.end if intent.mode == "as_of" else None
    subjects, found = facts_lookup.gather(ctx.store, state.question, ctx.store.get_facts([u.id for u in state.facts]))
    if not found and not (state.mode == "choice" and ctx.cfg.closed_world):
        return {"decided": False}
    known = facts_lookup.known(list(found.values()), when)
    if intent.mode == "history":  # "where did X work before ...": any version may answer
        for k in known:
            k.true_then = k.true_then or k.was_true
    if state.mode in ("choice", "set"):
        d = facts_lookup.decide(state.question, state.choices, known, subjects=subjects, closed_world=ctx.cfg.closed_world)
        if d.answer is None:
            return {"decided": False}
        chosen = d.answer if isinstance(d.answer, list) else [d.answer]
        used, cited = _with_facts(state, [found[i] for i in dict.fromkeys(d.support)], ctx)
        text = ", ".join(chosen)
    else:
        b = facts_lookup.best_fact(state.question, known, subjects=subjects)
        if b is None:
            return {"decided": False}
        used, cited = _with_facts(state, [found[b.fact_id]], ctx)
        chosen = []
        text = f"{b.text.rstrip('.')} [{cited[0]}]."
    runtime.stream_writer(text)
    return {"answer": text, "chosen": chosen, "cited": cited, "facts": used, "decided": True, "known": True}


def _with_facts(state: ChatState, facts: list[Fact], ctx: ChatContext) -> tuple[list[UsedFact], list[int]]:
    """The retrieved facts plus those an answer rests on (numbered after them), and the
    numbers of the latter."""
    used = list(state.facts)
    by_id = {u.id: u.n for u in used}
    cited: list[int] = []
    cache: dict[str, Any] = {}
    for f in facts:
        if f.id not in by_id:
            note, entries = _note_and_entries(f, state.intent)
            n = len(used) + 1
            used.append(UsedFact(n, f.id, f.text, note, f.is_current, _sources(entries, ctx.store, cache, ctx.cfg.max_sources)))
            by_id[f.id] = n
        cited.append(by_id[f.id])
    return used, list(dict.fromkeys(cited))


def generate(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Free text from the numbered facts; with `stream`, every token goes to the stream writer."""
    ctx = runtime.context
    intent = state.intent
    prev = (state.turns[-1].question, state.turns[-1].answer) if state.follow_up and state.turns else None
    prompt = chat_prompt.build(
        state.question, _context_lines(state.facts), when=intent.describe() if intent.mode == "as_of" else "now",
        history=intent.mode == "history", previous=prev,
    )
    max_tokens = min(state.max_tokens or ctx.cfg.max_tokens, ctx.cfg.max_tokens)
    if state.stream:
        text = _stream(ctx, prompt, max_tokens, runtime.stream_writer, state.question)
    else:
        text = ctx.llm.complete(prompt, max_tokens=max_tokens, stop=chat_prompt.STOP, step="chat", route=state.question).text
    answer, cited = _check_citations(chat_prompt.parse(text), state.facts)
    if not cited:
        cited = _attribute(answer, state.facts, state.question)
    return {"answer": answer, "cited": cited, "chosen": []}


def _check_citations(answer: str, facts: list[UsedFact]) -> tuple[str, list[int]]:
    """Point each marker [n] at the fact that best supports the text it closes.

    A small model often cites the wrong number ("Odense Boldklub [3]" with [3] about
    Oslo), or copies the example's numbers. A cited fact is kept if no other fact shares
    more content words with the text since the previous marker; otherwise the marker
    names the fact that shares the most; a marker whose text matches no fact, or whose
    numbers name no fact in the prompt, is dropped. Returns (answer, cited numbers, in order of first citation)."""
    terms = {u.n: set(content_terms(u.text)) for u in facts}
    cited: list[int] = []
    last, prev = 0, set()

    def fix(m: re.Match[str]) -> str:
        nonlocal last, prev
        segment = set(content_terms(answer[last : m.start()])) or prev  # "[1][2]": same text
        last, prev = m.end(), segment
        overlap = {n: len(t & segment) for n, t in terms.items()}
        best = max(overlap.values(), default=0)
        if best == 0:
            return ""
        said = [x for x in (int(v) for v in re.split(r"\s*,\s*", m.group(1))) if x in terms]
        if not said:
            return ""  # numbers that name no fact in the prompt
        good = list(dict.fromkeys(x for x in said if overlap[x] == best))
        if not good:
            good = [min(n for n, o in overlap.items() if o == best)]
        for x in good:
            if x not in cited:
                cited.append(x)
        return f" [{', '.join(map(str, good))}]"

    return chat_prompt.CITE.sub(fix, answer).strip(), cited


def _stream(
    ctx: ChatContext, prompt: str, max_tokens: int, write: Callable[[Any], None], route: str | None = None,
    stop: list[str] | None = None,
) -> str:
    """Stream tokens to `write` until a stop sequence, the cap, or should_stop().

    The backend's generator holds the model lock while it runs; closing it here, in the
    thread that started it, releases the lock even when the client went away."""
    parts: list[str] = []
    gen = ctx.llm.stream(prompt, max_tokens=max_tokens, stop=stop or chat_prompt.STOP, route=route)
    try:
        for tok in gen:
            if ctx.should_stop is not None and ctx.should_stop():
                break
            if not "".join(parts).strip():
                tok = tok.lstrip()  # the answer starts at its first visible character
            parts.append(tok)
            if "\n" in "".join(parts).strip():  # one-line answers; backends without stop support run on
                break
            if tok:
                write(tok)
    finally:
        gen.close()
    return "".join(parts)


def choose(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Multiple choice by likelihood (graphs/answer.choose)."""
    if not state.choices:
        raise ChatError("multiple-choice mode needs choices")
    c = answering.choose(
        runtime.context.llm, state.question, state.choices, _context_lines(state.facts), _date_for_choices(state.intent)
    )
    runtime.stream_writer(c.text)
    return {"answer": c.text, "chosen": [c.text], "cited": _attribute(c.text, state.facts, state.question)}


def choose_set(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """List answers: every choice the model judges right (graphs/answer.choose_set)."""
    if not state.choices:
        raise ChatError("list mode needs choices")
    picked = answering.choose_set(
        runtime.context.llm, state.question, state.choices, _context_lines(state.facts), _date_for_choices(state.intent)
    )
    text = ", ".join(picked)
    runtime.stream_writer(text)
    cited = list(dict.fromkeys(n for p in picked for n in _attribute(p, state.facts, state.question)))
    return {"answer": text, "chosen": picked, "cited": cited}


def unknown(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Nothing relevant is known: say so; no model call, no guess."""
    intent = state.intent
    text = chat_prompt.nothing_known(intent.describe() if intent.mode == "as_of" else "now")
    runtime.stream_writer(text)
    return {"answer": text, "cited": [], "chosen": []}


def recall(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Closed book: the question as the trainer asks it, answered from the weights. The
    backend routes on the question, so a consolidated adapter answers what it learned and
    the base model everything else; nothing is cited (no fact was read)."""
    ctx = runtime.context
    prompt = closed_book.build(state.question)
    max_tokens = min(state.max_tokens or ctx.cfg.max_tokens, ctx.cfg.max_tokens)
    if state.stream:
        text = _stream(ctx, prompt, max_tokens, runtime.stream_writer, state.question, stop=closed_book.STOP)
    else:
        text = ctx.llm.complete(prompt, max_tokens=max_tokens, stop=closed_book.STOP, step="closed_book", route=state.question).text
    return {"answer": closed_book.parse(text), "cited": [], "chosen": [], "facts": [], "known": False}


def remember(state: ChatState) -> dict[str, Any]:
    by_n = {u.n: u.id for u in state.facts}
    return {"turns": [Turn(state.question, state.answer, state.named_time, [by_n[n] for n in state.cited if n in by_n])]}


def _source_route(state: ChatState) -> str:
    if not state.closed_book:
        return "retrieve"
    return {"choice": "choose", "set": "choose_set"}.get(state.mode, "recall")


def _answer_route(state: ChatState) -> str:
    # choice modes always pick (an evaluation needs an answer); free text does not guess
    if state.decided:
        return "remember"
    if state.mode == "choice":
        return "choose"
    if state.mode == "set":
        return "choose_set"
    return "generate" if state.known else "unknown"


# ----------------------------------------------------------------------------- wiring
builder = StateGraph(ChatState, context_schema=ChatContext)
builder.add_node("understand", understand)
builder.add_node("retrieve", retrieve)
builder.add_node("lookup", lookup)
builder.add_node("generate", generate)
builder.add_node("choose", choose)
builder.add_node("choose_set", choose_set)
builder.add_node("unknown", unknown)
builder.add_node("recall", recall)
builder.add_node("remember", remember)
builder.add_edge(START, "understand")
builder.add_conditional_edges("understand", _source_route, ["retrieve", "recall", "choose", "choose_set"])
builder.add_edge("retrieve", "lookup")
builder.add_conditional_edges("lookup", _answer_route, ["remember", "generate", "choose", "choose_set", "unknown"])
for _n in ("generate", "choose", "choose_set", "unknown", "recall"):
    builder.add_edge(_n, "remember")
builder.add_edge("remember", END)
graph = builder.compile()  # stateless: the API passes the conversation in
graph.name = "knowd-chat"


def memory_saver() -> InMemorySaver:
    """A checkpointer for per-session memory that revives only the chat's own types."""
    serde = JsonPlusSerializer(allowed_msgpack_modules=[Turn, UsedFact, Source, TimeIntent])
    return InMemorySaver(serde=serde)


# ----------------------------------------------------------------------------- runner
@dataclass
class ChatResult:
    question: str
    answer: str
    mode: str
    intent: TimeIntent
    known: bool
    facts: list[UsedFact]  # every fact the model saw, numbered as in the prompt
    citations: list[UsedFact]  # the ones the answer rests on
    chosen: list[str]


class ChatAgent:
    """Answers questions over an application's facts; remembers conversations per session.

    `ask(..., session=ID)` keeps the conversation in the checkpointer under thread ID;
    without a session the call is stateless and `history` gives the earlier turns (the
    OpenAI API sends the whole conversation with every request).
    """

    def __init__(
        self, components: Components, cfg: ChatConfig, *, checkpointer: BaseCheckpointSaver | None = None,
        now: Callable[[], datetime] = utcnow,
    ):
        self.components = components
        self.cfg = cfg
        self.now = now
        self.checkpointer = checkpointer or memory_saver()
        self._memory = builder.compile(checkpointer=self.checkpointer)

    def _context(self, should_stop: Callable[[], bool] | None) -> ChatContext:
        c = self.components
        return ChatContext(c.store, c.index, c.llm, self.cfg, self.now, should_stop)

    def ask(
        self, question: str, *, session: str | None = None, default_time: TimeIntent | None = None,
        mode: AnswerMode = "text", choices: list[str] | None = None, history: list[Turn] | None = None,
        max_tokens: int | None = None, on_token: Callable[[str], None] | None = None,
        should_stop: Callable[[], bool] | None = None, retrieval: bool | None = None,
    ) -> ChatResult:
        """Answer one question. `on_token` receives the answer as it is produced.
        `retrieval=False` answers closed book, from the model's weights alone (default:
        chat.retrieval)."""
        if not question or not question.strip():
            raise ChatError("empty question")
        if len(question) > self.cfg.max_question_chars:
            raise ChatError(f"question is over {self.cfg.max_question_chars:,} characters (chat.max_question_chars)")
        if mode not in ("text", "choice", "set"):
            raise ChatError(f"unknown answer mode {mode!r} (text, choice or set)")
        inp: dict[str, Any] = {
            "question": question.strip(), "default_time": default_time, "mode": mode,
            "choices": list(choices or []), "stream": on_token is not None, "max_tokens": max_tokens,
            "closed_book": not (self.cfg.retrieval if retrieval is None else retrieval),
        }
        if session is None:
            g, config = graph, {}
            inp["turns"] = list(history or [])[-MAX_TURNS:]
        else:
            g, config = self._memory, {"configurable": {"thread_id": session}}
        if on_token is None:
            out = g.invoke(inp, config, context=self._context(should_stop))
        else:
            # Nodes run on LangGraph's worker thread while tokens arrive here. If this side
            # fails (Ctrl-C, a client gone), the generation must stop first: closing the
            # stream waits for the running node. (`it` is held so that the loop's unwinding
            # does not close the stream before the flag is set.)
            abandoned = threading.Event()

            def stop() -> bool:
                return abandoned.is_set() or (should_stop is not None and should_stop())

            out = {}
            it = g.stream(inp, config, context=self._context(stop), stream_mode=["custom", "values"])
            try:
                for kind, chunk in it:
                    if kind == "custom":
                        on_token(str(chunk))
                    else:
                        out = chunk
            except BaseException:
                abandoned.set()
                raise
            finally:
                it.close()
        facts: list[UsedFact] = out["facts"]
        by_n = {u.n: u for u in facts}
        return ChatResult(
            out["question"], out["answer"], out["mode"], out["intent"], out["known"], facts,
            [by_n[n] for n in out["cited"] if n in by_n], out["chosen"],
        )

    def turns(self, session: str) -> list[Turn]:
        """The conversation remembered for a session."""
        snap = self._memory.get_state({"configurable": {"thread_id": session}})
        return list(snap.values.get("turns", [])) if snap and snap.values else []

    def forget(self, session: str) -> None:
        self.checkpointer.delete_thread(session)
