"""End-to-end replay of a tiny generated world through every system with the fake LLM,
the error analysis, and the `knowd bench` commands."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.harness import analysis
from bench.harness.runner import BenchOptions, run_benchmark
from bench.harness.stream import Question, read_stream
from bench.harness.systems import SYSTEMS
from bench.harness.world import generate_world
from stores.testing import HashEmbedder
from graphs.testing import FakeLLM
from tests.helpers import doc, extracted, fact


def _responder(prompt: str, schema: dict | None, step: str) -> Any:
    """Extract one fact per conversation line; keep every old fact; retire what is false."""
    if step == "extract":
        chunk = prompt.rsplit("\nText (", 1)[1].split("): ", 1)[1].rsplit("\nFacts: ", 1)[0]
        facts = []
        for line in chunk.splitlines():
            who, _, said = line.partition(": ")
            if said:
                facts.append({"subject": who, "relation": "said", "object": said[:80]})
        return {"facts": facts[:8]}
    if step == "classify":
        return {k: "no_change" for k in schema["required"]}  # type: ignore[index]
    return {"retire": True}


def _scorer(prompt: str, choices: list[str]) -> list[float]:
    """Prefer choices whose words appear among the facts shown."""
    facts = prompt.rsplit("Facts (", 1)[-1] if "Facts (" in prompt else ""
    return [float(sum(w.lower() in facts.lower() for w in c.split())) for c in choices]


class MeteredFake(FakeLLM):
    """FakeLLM whose choice scoring is metered like the real backends'."""

    def score_choices(self, prompt: str, choices: list[str], step: str = "choices", route: str | None = None) -> list[float]:
        out = super().score_choices(prompt, choices, step, route)
        self.meter.add(step, self.count_tokens(prompt), 0, 0.0)
        return out


@pytest.fixture
def world_stream():  # noqa: ANN201
    return generate_world("multi-hop", 3, people=7, companies=3, changes=2).stream


def test_replay_every_system_counts_calls_and_writes_outputs(tmp_path: Path, erase_cfg, world_stream) -> None:  # noqa: ANN001
    llm = MeteredFake(responder=_responder, choice_scorer=_scorer)
    out = tmp_path / "out"
    names = [n for n in SYSTEMS if "weights" not in n]  # the weights systems train: test_weights_systems_* below
    opts = BenchOptions(systems=names, max_questions=12, seed=1, k=6, out=out)
    res = run_benchmark(world_stream, opts, llm=llm, embedder=HashEmbedder(), cfg=erase_cfg, stream_name="tiny")

    n_docs = len(world_stream.documents)
    assert res["selection"]["documents"] == n_docs and res["selection"]["questions"] == 12
    assert res["selection"]["changed_questions"] == 6
    systems = res["systems"]
    assert list(systems) == names
    for name, r in systems.items():
        assert len(r["questions"]) == 12 and len(r["documents"]) == n_docs, name
        assert r["accuracy"]["overall"]["n"] == 12
        q_cost = r["cost"]["per_question"]
        assert q_cost["total"]["calls"] >= 24, name  # every question scores its choices (2+ calls)
        for row in r["questions"]:
            assert row["cost"]["calls"] >= 2 and isinstance(row["correct"], bool)
    # ingest costs: knowd extracts and classifies, fact-rag only extracts, the others call nothing
    assert systems["knowd"]["cost"]["per_document"]["total"]["calls"] > systems["fact-rag"]["cost"]["per_document"]["total"]["calls"]
    assert systems["fact-rag"]["cost"]["per_document"]["total"]["calls"] == n_docs  # one extract per (short) document
    for name in ("rag", "long-context"):
        assert all(d["cost"]["calls"] == 0 for d in systems[name]["documents"]), name
    # the same model answered every system: their total answer calls match question for question
    per_q = {name: [row["cost"]["calls"] for row in r["questions"]] for name, r in systems.items()}
    assert len({tuple(v) for v in per_q.values()}) == 1
    # long-context sees documents; fact systems see facts
    assert all(row["context"] for row in systems["long-context"]["questions"])
    assert all(row["retrieved"] for row in systems["knowd"]["questions"])
    # fact-rag never revises: every fact it has is still true
    assert systems["fact-rag"]["store"]["not_current"] == 0
    for name in ("knowd", "fact-rag", "rag"):
        e = systems[name]["errors"]
        assert e["wrong"] == sum(not row["correct"] for row in systems[name]["questions"])
        assert sum(e["causes"].values()) == e["wrong"]

    # outputs: JSON (re-readable), Markdown table, PNG
    data = json.loads((out / "results.json").read_text())
    assert data["systems"]["knowd"]["accuracy"] == systems["knowd"]["accuracy"]
    md = (out / "results.md").read_text()
    for name in names:
        assert f"| {name} |" in md
    assert "updates 2+" in md and "calls/doc" in md and "not_in_store" in md
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # each system got a fresh store of its own
    assert (out / "work" / "knowd" / "knowd.sqlite").exists() and (out / "work" / "rag" / "rag_chunks.sqlite").exists()


def test_knowd_answers_from_facts_true_at_question_time(tmp_path: Path, erase_cfg) -> None:  # noqa: ANN001
    """Each answer sees the facts true at its own time: the old CEO before the change, the new one after."""
    from bench.harness.stream import Stream

    d1 = doc("d1", "Maria Lopez is CEO of Northwind.", "2020-01-01")
    d2 = doc("d2", "John Smith replaced Maria Lopez as CEO of Northwind.", "2022-06-01")
    qs = [
        Question("q1", datetime(2021, 1, 1, tzinfo=timezone.utc), "Who is the CEO of Northwind?", ["Maria Lopez", "John Smith"], "Maria Lopez"),
        Question("q2", datetime(2022, 7, 1, tzinfo=timezone.utc), "Who is the CEO of Northwind?", ["Maria Lopez", "John Smith"], "John Smith", 1, True),
    ]
    llm = MeteredFake(
        [
            extracted(fact("Maria Lopez", "is CEO of", "Northwind")),
            extracted(fact("John Smith", "is CEO of", "Northwind")),
            {"1": "make_false"},
            {"retire": True},
        ],
        choice_scorer=_scorer,
    )
    res = run_benchmark(Stream([d1, d2], qs), BenchOptions(systems=["knowd"], out=tmp_path), llm=llm, embedder=HashEmbedder(), cfg=erase_cfg)
    rows = res["systems"]["knowd"]["questions"]
    assert [r["correct"] for r in rows] == [True, True]
    assert "Maria Lopez" in rows[0]["context"][0] and "(2020-01-01)" in rows[0]["context"][0]
    assert not any("Maria" in ln for ln in rows[1]["context"])
    assert res["systems"]["knowd"]["accuracy"]["by_updates"]["1"]["accuracy"] == 1.0


class _Store:
    """Just enough of a Store for diagnose()."""

    def __init__(self, facts: list[Any]):
        self.facts = facts

    def list_facts(self, current_only: bool = True) -> list[Any]:
        return self.facts


def _fact(fid: str, text: str, *hist: tuple[str, bool]) -> Any:
    from stores.types import Fact, HistoryEntry

    return Fact(fid, text, history=[HistoryEntry(datetime.fromisoformat(t).replace(tzinfo=timezone.utc), v, "d", "x") for t, v in hist])


def test_diagnose_causes() -> None:
    t = datetime(2022, 6, 1, tzinfo=timezone.utc)
    q = Question("q", t, "Where does Mary Lee work?", ["Google", "Amazon"], "Amazon", 1, True)
    hist = [(datetime(2021, 1, 1, tzinfo=timezone.utc), "Google"), (t, "Amazon")]
    old = _fact("f1", "Mary Lee works at Google.", ("2021-01-01", True))
    new = _fact("f2", "Mary Lee works at Amazon.", ("2022-02-01", True))
    # the old fact was never made false and was retrieved: a wrong decision
    assert analysis.diagnose(q, "Google", ["f1", "f2"], _Store([old, new]), hist) == "stale_kept"
    old_false = _fact("f1", "Mary Lee works at Google.", ("2021-01-01", True), ("2022-02-01", False))
    assert analysis.diagnose(q, "Google", ["f2"], _Store([old_false, new]), hist) == "answer_choice"
    assert analysis.diagnose(q, "Google", [], _Store([old_false, new]), hist) == "retrieval_miss"
    assert analysis.diagnose(q, "Google", [], _Store([old_false]), hist) == "not_in_store"
    gone = _fact("f2", "Mary Lee works at Amazon.", ("2022-02-01", True), ("2022-03-01", False))
    assert analysis.diagnose(q, "Google", [], _Store([gone]), hist) == "over_falsified"
    later = _fact("f2", "Mary Lee works at Amazon.", ("2023-01-01", True))  # stated only after the question
    assert analysis.diagnose(q, "Google", [], _Store([later]), hist) == "not_in_store"
    # yes/no: a kept fact linking the two entities makes a "no" answer a wrong decision
    yn = Question("y", t, "Is Joel King a member of Odense Boldklub?", ["no", "yes"], "no", 1, True)
    kept = _fact("f3", "Joel King plays for Odense Boldklub.", ("2021-01-01", True))
    assert analysis.diagnose(yn, "yes", ["f3"], _Store([kept]), [(hist[0][0], "yes")]) == "stale_kept"
    yes = Question("y2", t, "Is Joel King a member of Odense Boldklub?", ["no", "yes"], "yes")
    assert analysis.diagnose(yes, "no", [], _Store([kept]), None) == "retrieval_miss"
    assert analysis.summarise_causes(["stale_kept", "answer_choice", "not_in_store"])["kinds"] == {
        "retrieval miss": 1, "wrong decision": 1, "answer choice": 1,
    }


def test_chance_accuracy() -> None:
    from bench.harness.runner import chance_accuracy

    t = datetime(2022, 1, 1, tzinfo=timezone.utc)
    qs = [Question("a", t, "?", ["no", "yes"], "no"), Question("b", t, "?", ["x", "y"], ["x"])]
    assert chance_accuracy(qs) == round((1 / 2 + 1 / 3) / 2, 4)  # a list answer is one of 3 non-empty subsets
    assert chance_accuracy([]) is None


def test_entities_of_a_question() -> None:
    q = Question("q", datetime(2022, 1, 1, tzinfo=timezone.utc), "What government position does Nadhim Zahawi hold?", ["a"], "a")
    assert analysis.entities(q) == ["Nadhim Zahawi"]
    q2 = Question("q", q.time, "Who is the chairperson of National Party of Australia?", ["a"], "a")
    assert analysis.entities(q2) == ["National Party of Australia"]


def test_cli_generate_and_default_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.cli import cli

    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(f"data_dir: {tmp_path / 'data'}\n")
    world = tmp_path / "w.jsonl"
    r = CliRunner().invoke(cli, ["--config", str(cfg_file), "bench", "generate", "--world", "single-hop", "--seed", "2", "--changes", "2", "--out", str(world)])
    assert r.exit_code == 0, r.output
    assert "9 documents" in r.output and read_stream(world).questions

    monkeypatch.setattr("agent.llm.build_llm", lambda cfg: MeteredFake(responder=_responder, choice_scorer=_scorer))
    monkeypatch.setattr("agent.embeddings.build_embedder", lambda cfg: HashEmbedder())
    out = tmp_path / "out"
    # `knowd bench STREAM` is `knowd bench run STREAM`
    r = CliRunner().invoke(cli, ["--config", str(cfg_file), "bench", str(world), "--system", "rag", "--system", "weights",
                                 "--max-questions", "4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "rag: " in r.output and "weights: " in r.output
    res = json.loads((out / "results.json").read_text())
    assert set(res["systems"]) == {"rag", "weights"}
    # the fake model is no GGUF to train: each checkpoint's consolidation fails, clearly, and the bench goes on
    cons = res["systems"]["weights"]["consolidations"]
    assert cons and all(c["status"] == "failed" and "no GGUF" in c["reason"] for c in cons)
    (out / "results.md").unlink()
    r = CliRunner().invoke(cli, ["bench", "report", str(out)])
    assert r.exit_code == 0, r.output
    assert "guessing uniformly would score" in (out / "results.md").read_text()
    r = CliRunner().invoke(cli, ["--config", str(cfg_file), "bench", str(world), "--system", "nope"])
    assert r.exit_code == 2 and "nope" in r.output
    r = CliRunner().invoke(cli, ["--config", str(cfg_file), "bench", "run", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 2


def test_long_context_fits_the_window(tmp_path: Path, cfg) -> None:  # noqa: ANN001
    """Dated, numbered lines cost more than their text: the prompt must still fit n_ctx
    (a real run once overflowed by ~50 tokens), and a lone huge document is cut to fit."""
    from bench.harness.systems import BenchEnv, LongContextSystem
    from graphs.prompts import answer as answer_prompt

    prompts: list[str] = []

    def scorer(prompt: str, choices: list[str]) -> list[float]:
        prompts.append(prompt)
        return [0.0] * len(choices)

    class DigitFake(MeteredFake):
        def count_tokens(self, text: str) -> int:  # digits one token each, like Gemma's tokenizer
            return len(text.split()) + sum(ch.isdigit() for ch in text)

    llm = DigitFake(choice_scorer=scorer, n_ctx=400)
    env = BenchEnv(llm=llm, embedder=HashEmbedder(), cfg=cfg, workdir=tmp_path)
    lc = LongContextSystem(env)
    for i in range(30):
        lc.add_document(doc(f"d{i}", " ".join(f"word{i}" for _ in range(25)), f"2022-01-{i % 28 + 1:02d}"))
    q = Question("q", datetime(2022, 3, 1, tzinfo=timezone.utc), "Which word is newest?", ["word29", "word0"], "word29")
    a = lc.answer(q)
    assert a.context and "word29" in a.context[-1] and "word0 " not in " ".join(a.context)  # newest last, oldest dropped
    full = answer_prompt.build(q.question, a.context, "2022-03-01")
    assert max(llm.count_tokens(full + " " + c) for c in q.choices) <= llm.n_ctx
    assert llm.count_tokens(full) > llm.n_ctx - 120  # and the window is actually used

    huge = LongContextSystem(env)
    huge.add_document(doc("big", "many words here " * 400, "2022-01-01"))
    b = huge.answer(q)
    assert len(b.context) == 1 and llm.count_tokens(answer_prompt.build(q.question, b.context, "2022-03-01")) <= llm.n_ctx


def test_weights_systems_consolidate_at_checkpoints(tmp_path: Path) -> None:
    """weights and knowd+weights: knowd's ingest into a store, consolidated into an adapter
    at each checkpoint (a real trainer run on a tiny model with a scripted generator),
    answers routed on the question; the second system reuses the first's adapters."""
    pytest.importorskip("torch")
    from agent.config import config_from_dict
    from bench.harness.stream import Stream
    from trainer.testing import FactGenerator, cached_test_models

    tiny = {"base_model_dir": str(cached_test_models()["tiny"]), "max_steps": 2, "eval_every": 1, "general_probes": 4,
            "arithmetic_train_probes": 2, "heldout_fact_probes": 2, "teacher_top_k": 16, "batch_size": 4, "probe_batch_size": 2,
            "gate_min_efficacy_gain": -1}  # the scripted live adapter already "knows" every fact it was given
    cfg = config_from_dict({"data_dir": str(tmp_path / "data"), "consolidation": tiny}, base_dir=tmp_path)
    t = lambda s: datetime.fromisoformat(s).replace(tzinfo=timezone.utc)  # noqa: E731
    docs = [doc("d1", "Alice Martin is the mayor of Zorbville.", "2024-01-01"), doc("d2", "Bob Stone is the mayor of Quintar.", "2024-03-01")]
    qs = [Question("q1", t("2024-02-01"), "Who is the mayor of Zorbville?", ["Alice Martin", "Bob Stone"], "Alice Martin"),
          Question("q2", t("2024-04-01"), "Who is the mayor of Quintar?", ["Alice Martin", "Bob Stone"], "Bob Stone")]
    llm = MeteredFake(choice_scorer=_scorer)
    gen = FactGenerator([("Alice Martin", "mayor of Zorbville"), ("Bob Stone", "mayor of Quintar")])
    out = tmp_path / "out"
    res = run_benchmark(Stream(docs, qs), BenchOptions(systems=["weights", "knowd+weights"], out=out), llm=llm,
                        embedder=HashEmbedder(), cfg=cfg, generator=gen)
    w, kw = res["systems"]["weights"], res["systems"]["knowd+weights"]
    assert [c["status"] for c in w["consolidations"]] == ["shipped", "shipped"], w["consolidations"]
    assert [c["version"] for c in w["consolidations"]] == ["v0001", "v0002"]
    assert [c["checkpoint"][:10] for c in w["consolidations"]] == ["2024-02-01", "2024-04-01"]
    assert not any(c.get("reused") for c in w["consolidations"])
    assert all(c.get("reused") for c in kw["consolidations"])  # same stream, same ingest: the same adapters
    assert json.loads((out / "work" / "weights" / "live.json").read_text())["version"] == "v0002"
    # weights answers from nothing but the question; the router sees the question
    assert all(row["context"] == [] for row in w["questions"])
    routes = [c.route for c in llm.calls if c.schema and "choices" in c.schema]
    assert "Who is the mayor of Zorbville?" in routes and "Who is the mayor of Quintar?" in routes
    assert all(row["context"] for row in kw["questions"])  # knowd+weights reads the facts too
    md = (out / "results.md").read_text()
    assert "Consolidations of the weights systems" in md and "| weights | 2024-02-01 | shipped | v0001 |" in md
