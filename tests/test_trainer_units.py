"""Trainer pieces that need no model: config, selection, run records, adapters, gate, prompts, data generation."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stores.types import Fact, HistoryEntry
from trainer import adapters, runs
from trainer.config import TrainerConfig, describe
from trainer.errors import AdapterError, ConfigError, RunBusyError
from trainer.gate import decide
from trainer.selection import MemoryStore, change_key, select_facts, select_from_store

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def fact(i: int, text: str = "", truth_changes: list[bool] = (True,), obj: str = "") -> Fact:
    return Fact(
        id=f"f{i}", text=text or f"Person {i} is mayor of Town {i}.", object=obj or f"mayor of Town {i}",
        history=[HistoryEntry(T0 + timedelta(days=i, hours=j), t, f"d{i}", "extract") for j, t in enumerate(truth_changes)],
    )


# --- config -----------------------------------------------------------------------------


def test_config_from_dict_presets_and_unknown_key():
    cfg = TrainerConfig.from_dict({})
    # served (routed) locality >= 0.98, arithmetic within 1 point, no time budget: issue #12's bar
    assert cfg.preset == "small" and cfg.temperature == 2.0 and cfg.gate_min_locality == 0.98
    assert cfg.gate_max_arithmetic_drop == 1.0 and cfg.train_time_budget_s == 0 and cfg.routing
    gpu = TrainerConfig.from_dict({"preset": "gpu", "lora_r": 16})
    assert gpu.max_steps == 600 and gpu.lora_r == 16
    with pytest.raises(ConfigError, match="'lora_rank'"):
        TrainerConfig.from_dict({"lora_rank": 4})
    with pytest.raises(ConfigError, match="preset"):
        TrainerConfig.from_dict({"preset": "huge"})
    with pytest.raises(ConfigError, match="lm_head"):
        TrainerConfig.from_dict({"target_modules": ["q_proj", "lm_head"]})
    with pytest.raises(ConfigError, match="replay_fraction"):
        TrainerConfig.from_dict({"replay_fraction": 1.5})
    assert "help" not in describe() and "locality_weight" in describe()


def test_every_config_field_has_help():
    import dataclasses

    for f in dataclasses.fields(TrainerConfig):
        assert f.metadata.get("help"), f.name


def test_trainer_package_import_is_light():
    code = "import sys, trainer, trainer.run, trainer.adapters, trainer.report, trainer.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False", out.stderr


# --- selection ------------------------------------------------------------------------------


def test_select_new_retracted_and_replay():
    new = fact(1)
    gone = fact(2, truth_changes=[True, False])
    earlier = [fact(i) for i in range(10, 30)]
    sel = select_facts([new, gone], earlier, replay_fraction=0.25, max_replay=3, seed=1)
    kinds = {s.id: s.kind for s in sel.facts}
    assert kinds["f1"] == "new" and kinds["f2"] == "retracted"
    assert sum(1 for k in kinds.values() if k == "replay") == 3  # 25% of 20 = 5, capped at 3
    assert "no longer true" in next(s for s in sel.facts if s.id == "f2").statement
    # same seed, same replay sample
    again = select_facts([new, gone], earlier, replay_fraction=0.25, max_replay=3, seed=1)
    assert again.ids() == sel.ids()


def test_select_max_new_keeps_pending_and_done_skips_consolidated():
    changed = [fact(i) for i in range(5)]
    sel = select_facts(changed, [], max_new=2)
    assert [s.id for s in sel.facts] == ["f4", "f3"]  # most recent first
    assert {f.id for f in sel.pending} == {"f2", "f1", "f0"}
    done = {f.id: change_key(f) for f in changed[:4]}
    sel2 = select_facts(changed, [], done=done)
    assert [s.id for s in sel2.facts] == ["f4"]
    # a fact that changed again after consolidation is selected again
    changed[0].history.append(HistoryEntry(T0 + timedelta(days=50), False, "d9", "make_false"))
    assert "f0" in select_facts(changed, [], done=done).ids()


def test_select_from_store_replays_only_current_consolidated():
    facts = [fact(i) for i in range(6)] + [fact(9, truth_changes=[True, False])]
    store = MemoryStore(facts, recorded_at=T0 + timedelta(days=30))
    assert store.facts_changed_since(T0 + timedelta(days=31)) == []
    done = {f.id: change_key(f) for f in facts[:5]}  # f5 and f9 changed after the last run
    done["f9"] = change_key(fact(9))
    sel = select_from_store(store, T0, ["f0", "f1", "f9"], replay_fraction=1.0, max_replay=10, max_new=0, seed=0, done=done)
    assert {(s.id, s.kind) for s in sel.new} == {("f5", "new"), ("f9", "retracted")}
    assert {s.id for s in sel.replay} == {"f0", "f1"}  # f9 changed (false now): not replayed


# --- run records ------------------------------------------------------------------------------


def test_run_lock_and_stale_runs(tmp_path):
    h = runs.start_run(tmp_path, {"x": 1})
    rec = json.loads(h.path.read_text())
    assert rec["status"] == "running" and rec["pid"] == os.getpid()
    with pytest.raises(RunBusyError):
        runs.start_run(tmp_path)
    h.finish("refused", "test")
    # a run whose process died while 'running'
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_dir = runs.runs_dir(tmp_path) / "20200101T000000Z-dead"
    stale_dir.mkdir(parents=True)
    runs.atomic_write_json(stale_dir / "run.json", {"id": stale_dir.name, "status": "running", "pid": dead.pid, "phase": "train"})
    h2 = runs.start_run(tmp_path)
    assert h2.record["stale_runs_marked_failed"] == [stale_dir.name]
    stale = json.loads((stale_dir / "run.json").read_text())
    assert stale["status"] == "failed" and "process died" in stale["reason"] and "train" in stale["reason"]
    h2.finish("skipped", "")
    assert [r["status"] for r in runs.list_runs(tmp_path)] == ["failed", "refused", "skipped"]


def test_latest_run_skips_unreadable_records(tmp_path):
    assert runs.latest_run(tmp_path) is None
    h = runs.start_run(tmp_path)
    h.finish("skipped", "nothing new")
    (runs.runs_dir(tmp_path) / "99990101T000000Z-bad").mkdir()
    (runs.runs_dir(tmp_path) / "99990101T000000Z-bad" / "run.json").write_text("{half a reco")
    assert runs.latest_run(tmp_path)["id"] == h.id
    assert [r["id"] for r in runs.list_runs(tmp_path)] == [h.id]


# --- adapters -----------------------------------------------------------------------------------


def _stage(tmp_path: Path, name: str) -> Path:
    d = tmp_path / f"stage-{name}"
    d.mkdir()
    (d / "adapter.gguf").write_bytes(b"GGUF" + name.encode())
    return d


def test_publish_use_rollback(tmp_path):
    dd = tmp_path / "data"
    assert adapters.live(dd) is None and adapters.list_versions(dd) == []
    v1 = adapters.publish(dd, _stage(tmp_path, "a"), {"run_id": "r1", "facts": []})
    v2 = adapters.publish(dd, _stage(tmp_path, "b"), {"run_id": "r2", "facts": []})
    assert (v1.version, v2.version) == ("v0001", "v0002")
    live = adapters.live(dd)
    assert live == {"version": "v0002", "gguf": str((dd / "adapters/v0002/adapter.gguf").resolve()), "scale": 1.0}
    assert [v.live for v in adapters.list_versions(dd)] == [False, True]
    assert adapters.rollback(dd) == "v0001"
    assert adapters.rollback(dd) is None and adapters.live(dd) is None
    with pytest.raises(AdapterError):
        adapters.rollback(dd)
    adapters.use_version(dd, "v0002")
    assert adapters.live_version(dd) == "v0002"
    with pytest.raises(AdapterError, match="v0009"):
        adapters.use_version(dd, "v0009")
    assert [h["action"] for h in adapters.history(dd)] == ["ship", "ship", "rollback", "rollback", "use"]
    assert not list((dd / "adapters").glob(".*tmp"))


def test_cli_adapters_and_report_errors(tmp_path, capsys):
    from trainer.__main__ import main

    dd = tmp_path / "data"
    adapters.publish(dd, _stage(tmp_path, "a"), {"run_id": "r1", "facts": []})
    assert main(["adapters", "list", "--data-dir", str(dd)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["version", "shipped", "(UTC)"] and out[1].startswith("v0001 *")
    assert main(["adapters", "use", "v0042", "--data-dir", str(dd)]) == 2
    assert "no adapter version 'v0042'" in capsys.readouterr().err
    assert main(["report", "--data-dir", str(dd)]) == 2
    assert "no consolidation report" in capsys.readouterr().err


# --- gate ---------------------------------------------------------------------------------------------


def test_gate_thresholds():
    cfg = TrainerConfig().replace(gate_min_locality=0.95, gate_max_arithmetic_drop=2.0)  # the thresholds these cases were written for
    base = {"efficacy": 0.1, "locality": 1.0, "arithmetic": 0.80}
    good = {"efficacy": 0.9, "locality": 0.97, "arithmetic": 0.79}
    d = decide(base, base, good, cfg)
    assert d.ship and d.reason.startswith("shipped")
    bad_loc = dict(good, locality=0.90)
    d = decide(base, base, bad_loc, cfg)
    assert not d.ship and "locality 0.900 < 0.95" in d.reason
    bad_arith = dict(good, arithmetic=0.77)
    d = decide(base, base, bad_arith, cfg)
    assert not d.ship and "arithmetic" in d.reason and "drop 3 pts" in d.reason
    no_gain = dict(good, efficacy=0.05)
    assert not decide(base, base, no_gain, cfg).ship
    assert decide(base, base, no_gain, cfg.replace(gate_min_efficacy_gain=-1)).ship
    d = decide(base, base, good, cfg, cut_short=True)  # a time budget ended training: machine-dependent
    assert not d.ship and "cut short" in d.reason


# --- prompts and data generation ----------------------------------------------------------------------------


def test_answer_matching_and_parsers():
    from trainer.prompts import answer, questions, story

    assert answer.matches(" the Secretary of State for Education.", "Secretary of State for Education")
    assert not answer.matches("Prime Minister", "Secretary of State for Education")
    assert answer.matches("No, he is not", "no") and not answer.matches("Nobody", "no")
    assert answer.first_int(" 12\n") == 12 and answer.first_int("x") is None
    qs = questions.parse_questions(" Who is X now?\nQ: Who is X now?\nQ: not a question\nQ: Which one is Y today?", 5)
    assert qs == ["Who is X now?", "Which one is Y today?"]
    qa = questions.parse_qa(" Where is X?\nA: Paris\nQ: What is X?\nA: mayor\nQ: dangling?", 5, exclude_answer="mayor")
    assert qa == [("Where is X?", "Paris")]
    s = story.parse("Tom is mayor of Leeds.", " Leeds is big. Leeds is big. It is in England.")
    assert s == "Tom is mayor of Leeds. Leeds is big. It is in England."


def test_generate_fact_data_splits_and_filter():
    from trainer.datagen import build_probes, generate_fact_data
    from trainer.selection import select_facts
    from trainer.testing import FactGenerator, facts_for

    pairs = [("Alice", "zorblax"), ("Bob", "quintar")]
    fs = facts_for(pairs)
    fs.append(Fact(id="gone", text="Carol is mayor of Leeds.", object="mayor of Leeds",
                   history=[HistoryEntry(T0, True, "d", "extract"), HistoryEntry(T0 + timedelta(days=1), False, "d2", "make_false")]))
    gen = FactGenerator(pairs)
    cfg = TrainerConfig(n_paraphrase=4, n_multihop=3)
    data = generate_fact_data(select_facts(fs, []).facts, gen, cfg)
    by = {d.fact_id: d for d in data}
    alice = by["f0"]
    assert alice.story.startswith("Alice is zorblax.")
    eff = alice.of("efficacy")
    assert len(eff) == 1 and eff[0].form == "cloze" and eff[0].text == "Alice is" and eff[0].gold == "zorblax"
    assert eff[0].teacher_ok and eff[0].split == "train"
    assert [q.split for q in alice.of("paraphrase")] == ["eval", "train", "train", "train"]
    assert [q.split for q in alice.of("multihop")] == ["eval", "train"]
    assert all(q.teacher_ok for q in alice.questions)
    gone = by["gone"]
    assert gone.kind == "retracted" and gone.of("efficacy")[0].gold == "no" and "no longer true" in gone.story
    assert all(q.split in ("eval", "dropped") for q in gone.of("paraphrase")) or gone.of("paraphrase")
    # the teacher always sees the story, the generator was never asked about the adapter
    assert {w for w, _, _ in gen.calls} == {"base"}
    probes = build_probes(cfg, fs[:1])
    kinds = {(p.kind, p.split) for p in probes}
    assert {("general", "train"), ("general", "eval"), ("heldout", "eval"), ("arithmetic", "eval"), ("arithmetic", "train"), ("prose", "train")} == kinds
    assert sum(1 for p in probes if p.kind == "arithmetic" and p.split == "eval") == 100
    assert sum(1 for p in probes if p.kind == "prose") == cfg.prose_probes == 20


def test_teacher_filter_drops_disagreeing_questions():
    from trainer.datagen import FactData, Question, assign_splits

    fd = FactData("f", "new", "A is b.", "A is b.", "A is b.", [
        Question("A is", "b", "efficacy", "cloze", teacher_raw=" c", teacher_answer="c", teacher_ok=False),
        Question("q1?", "b", "paraphrase", teacher_raw=" b", teacher_answer="b", teacher_ok=True),
        Question("q2?", "b", "paraphrase", teacher_raw=" c", teacher_answer="c", teacher_ok=False),
        Question("q3?", "b", "paraphrase", teacher_raw=" b", teacher_answer="b", teacher_ok=True),
    ])
    assign_splits(fd, TrainerConfig())
    assert [q.split for q in fd.questions] == ["eval", "eval", "dropped", "train"]
    assign_splits(fd, TrainerConfig(filter_questions=False))
    assert [q.split for q in fd.questions] == ["train", "eval", "train", "train"]


def test_a_trained_question_needs_its_answer_in_the_story():
    """Teacher and question agreeing on an answer the story never states is the small
    model's prior speaking ("In which country is Sheng Thao mayor?" -> "China"): not trained."""
    from trainer.datagen import FactData, Question, assign_splits

    story = "Sheng Thao is the mayor of Oakland. Oakland is a city in California."
    fd = FactData("f", "new", "Sheng Thao is the mayor of Oakland.", "Sheng Thao is the mayor of Oakland.", story, [
        Question("Sheng Thao is the", "mayor of Oakland", "efficacy", "cloze", teacher_raw=" mayor of Oakland", teacher_answer="mayor of Oakland", teacher_ok=True),
        Question("held out?", "Oakland", "multihop", teacher_raw=" Oakland", teacher_answer="Oakland", teacher_ok=True),
        Question("In which state is Sheng Thao mayor?", "California", "multihop", teacher_raw=" California", teacher_answer="California", teacher_ok=True),
        Question("In which country is Sheng Thao mayor?", "China", "multihop", teacher_raw=" China", teacher_answer="China", teacher_ok=True),
    ])
    assign_splits(fd, TrainerConfig())
    assert [q.split for q in fd.questions] == ["train", "eval", "train", "dropped"]
    assign_splits(fd, TrainerConfig(grounded_questions=False))
    assert [q.split for q in fd.questions] == ["train", "eval", "train", "train"]


def test_report_renders_and_latest_report(tmp_path):
    from trainer.report import latest_report, write_report

    h = runs.start_run(tmp_path, TrainerConfig().to_dict())
    metrics = {k: {"efficacy": 0.1, "paraphrase": 0.0, "portability": 0.2, "locality": 1.0, "arithmetic": 0.8, "locality_kl": 0.0} for k in ("base", "before")}
    metrics["teacher"] = {"efficacy": 0.9, "paraphrase": 0.8, "portability": 0.5}
    metrics["after"] = {"efficacy": 0.7, "paraphrase": 0.3, "portability": 0.3, "locality": 0.96, "arithmetic": 0.8, "locality_kl": 0.02}
    runs.atomic_write_json(h.dir / "train_log.json", {"history": [{"step": i, "loss": 1 / i, "distill": 1 / i, "locality": 0.01, "lr": 1e-3} for i in range(1, 6)],
                                                      # a convergence check without a validation split logs no val_loss
                                                      "val_history": [{"step": 2, "train_match": 0.5}, {"step": 5, "val_loss": 0.3}]})
    h.update(metrics=metrics, facts=[{"id": "f1", "kind": "new", "text": "A | B is c."}], gate=decide(metrics["base"], metrics["before"], metrics["after"], TrainerConfig()).to_dict())
    h.finish("shipped", "ok", adapter_version="v0001")
    md = write_report(h.dir)
    text = md.read_text()
    assert "| Efficacy (fact's own prompt) | 10.0% | 90.0% | 10.0% | 70.0% |" in text, text
    assert "A \\| B is c." in text and "![Loss curves](loss.png)" in text
    assert (h.dir / "loss.png").stat().st_size > 1000 and (h.dir / "metrics.png").exists()
    assert "<table>" in (h.dir / "report.html").read_text()
    assert latest_report(tmp_path) == md
    assert latest_report(tmp_path, html_=True).name == "report.html"
    with pytest.raises(Exception, match="no consolidation report on 1999-01-01"):
        latest_report(tmp_path, "1999-01-01")
