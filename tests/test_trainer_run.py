"""Whole consolidation runs on a tiny random Gemma 3 with the scripted generator:
shipping, a failing gate, SIGTERM and kill -9."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from trainer import adapters, runs  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402
from trainer.selection import MemoryStore  # noqa: E402
from trainer.testing import FactGenerator, cached_test_models, facts_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [("Alice", "zorblax"), ("Bob", "quintar")]
MORE = [("Carol", "flimwick"), ("Dave", "snorkel")]


def tiny_cfg(**kw) -> TrainerConfig:
    base = {
        "base_model_dir": str(cached_test_models()["tiny"]), "max_steps": 2, "eval_every": 1, "general_probes": 4,
        "arithmetic_train_probes": 2, "heldout_fact_probes": 2, "teacher_top_k": 16, "batch_size": 4, "probe_batch_size": 2,
        "train_time_budget_s": 0,
    }
    base.update(kw)
    return TrainerConfig.from_dict(base)


def test_ship_then_refuse_keeps_previous_adapter_live(tmp_path):
    from trainer.report import latest_report
    from trainer.run import consolidate

    dd = tmp_path / "data"
    facts = facts_for(PAIRS)
    r1 = consolidate(tiny_cfg(), MemoryStore(facts), dd, progress=False, generator=FactGenerator(PAIRS + MORE))
    assert r1.status == "shipped", r1.reason
    assert r1.adapter_version == "v0001"
    live1 = (dd / "adapters" / "live.json").read_bytes()
    assert json.loads(live1)["version"] == "v0001"
    v1 = dd / "adapters" / "v0001"
    for name in ("adapter.gguf", "adapter_model.safetensors", "adapter_config.json", "meta.json", "metrics.json", "data.json", "trainer_config.json"):
        assert (v1 / name).is_file(), name
    m = r1.metrics
    assert m["before"]["efficacy"] == 0.0 and m["after"]["efficacy"] == 1.0 and m["teacher"]["portability"] == 1.0
    assert latest_report(dd) == r1.run_dir / "report.md"
    text = (r1.run_dir / "report.md").read_text()
    assert "SHIPPED" in text and "v0001" in text and "Alice is zorblax." in text

    # nothing changed: a second run has nothing to do
    r_skip = consolidate(tiny_cfg(), MemoryStore(facts), dd, progress=False, generator=FactGenerator(PAIRS + MORE))
    assert r_skip.status == "skipped"

    # new facts, but the "trained" model forgets arithmetic and changes probe answers
    facts2 = facts + facts_for(MORE, start="2024-02-01T00:00:00+00:00", prefix="g")
    # (unrouted: every probe reaches the adapter, as with llm.adapter: always)
    r2 = consolidate(tiny_cfg(routing=False), MemoryStore(facts2), dd, progress=False, generator=FactGenerator(PAIRS + MORE, adapter_mode="forgetful"))
    assert r2.status == "refused"
    assert "locality" in r2.reason and "arithmetic" in r2.reason and "live adapter stays v0001" in r2.reason
    assert (dd / "adapters" / "live.json").read_bytes() == live1
    assert [v.version for v in adapters.list_versions(dd)] == ["v0001"]
    rec2 = json.loads((r2.run_dir / "run.json").read_text())
    assert rec2["resumed_from"] == "v0001"  # it started from the live adapter
    assert {f["kind"] for f in rec2["facts"]} == {"new", "replay"}  # and replayed earlier facts
    assert (r2.run_dir / "adapter" / "adapter.gguf").is_file()  # the refused adapter stays with its run
    assert "REFUSED" in latest_report(dd).read_text()
    # refused facts are still pending for the next night
    st = runs.load_state(dd)
    assert set(st["consolidated"]) == {"f0", "f1"}


def test_routing_keeps_the_adapter_off_unrelated_prompts(tmp_path):
    """An adapter that breaks every unrelated answer it is asked: as served (routed by
    its scope) no probe reaches it, so it ships; applied to everything, it is refused."""
    from trainer.run import consolidate
    from trainer.scope import Scope

    facts = facts_for(PAIRS)
    routed = consolidate(tiny_cfg(), MemoryStore(facts), tmp_path / "a", progress=False,
                         generator=FactGenerator(PAIRS, adapter_mode="forgetful"))
    assert routed.status == "shipped", routed.reason
    m = routed.metrics
    assert m["after"]["locality"] == 1.0 and m["after"]["routed_probes"] == 0.0 and m["after"]["efficacy"] == 1.0
    assert m["after_unrouted"]["locality"] == 0.0  # what it does to prompts it is not routed
    assert m["router"]["false_positive_rate"] == 0.0 and m["router"]["recall"] == 1.0
    scope = Scope.load(tmp_path / "a" / "adapters" / "v0001" / "scope.json")
    assert scope is not None and {"Alice", "Bob"} <= set(scope.names)
    table = adapters.run_action(tmp_path / "a", "list")
    head, row = table[0].split(), table[1].split()
    assert head[:2] == ["version", "shipped"] and row[:2] == ["v0001", "*"]
    assert "100%/0%" in table[1]  # router recall / false positives
    assert "recent runs:" in table and any(" shipped " in ln for ln in table)
    report = (routed.run_dir / "report.md").read_text()
    assert "## What was learned" in report and "## Router" in report and "after, on every prompt" in report
    assert "Alice" in report.split("## Router", 1)[1]  # the scope's names are shown
    unrouted = consolidate(tiny_cfg(routing=False), MemoryStore(facts), tmp_path / "b", progress=False,
                           generator=FactGenerator(PAIRS, adapter_mode="forgetful"))
    assert unrouted.status == "refused" and "locality" in unrouted.reason

    # The next night starts from that live adapter: the locality reference is the live
    # adapter as served (routed by its scope, so the base model's answers), not the live
    # adapter on every prompt. The new adapter, routed too, keeps every probe's answer.
    facts2 = facts + facts_for(MORE, start="2024-02-01T00:00:00+00:00", prefix="g")
    night2 = consolidate(tiny_cfg(), MemoryStore(facts2), tmp_path / "a", progress=False,
                         generator=FactGenerator(PAIRS + MORE, adapter_mode="forgetful", live_mode="forgetful"))
    assert night2.status == "shipped", night2.reason
    assert night2.metrics["before"]["locality"] == 1.0 and night2.metrics["after"]["locality"] == 1.0
    assert night2.metrics["after_unrouted"]["locality"] < 1.0
    scope2 = Scope.load(tmp_path / "a" / "adapters" / "v0002" / "scope.json")
    assert scope2 is not None and {"Alice", "Bob"} <= set(scope2.names)  # the scope accumulates


SCRIPT = textwrap.dedent(
    """
    import sys
    from trainer.config import TrainerConfig
    from trainer.run import consolidate
    from trainer.selection import MemoryStore
    from trainer.testing import FactGenerator, facts_for
    pairs = [("Alice", "zorblax"), ("Bob", "quintar")]
    cfg = TrainerConfig.from_dict({{"base_model_dir": {tiny!r}, "max_steps": 100000, "eval_every": 100000, "general_probes": 4,
        "arithmetic_train_probes": 2, "teacher_top_k": 16, "batch_size": 2, "probe_batch_size": 1, "train_time_budget_s": 0}})
    r = consolidate(cfg, MemoryStore(facts_for(pairs)), {dd!r}, progress=False, generator=FactGenerator(pairs))
    print("RESULT", r.status)
    sys.exit(143 if r.status == "interrupted" else 0)
    """
)


def _start_in_training(tmp_path: Path, dd: Path) -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tiny=str(cached_test_models()["tiny"]), dd=str(dd)))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        recs = runs.list_runs(dd)
        if recs and recs[-1].get("phase") == "train":
            time.sleep(1.0)  # a few optimiser steps in
            return proc, Path(recs[-1]["dir"])
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"run never reached training: {proc.communicate()[0][-3000:]}")


def _existing_live(dd: Path, tmp_path: Path) -> bytes:
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "adapter.gguf").write_bytes(b"GGUF-old")
    adapters.publish(dd, stage, {"run_id": "old", "facts": []})
    return (dd / "adapters" / "live.json").read_bytes()


def test_sigterm_mid_training_marks_interrupted_and_keeps_live(tmp_path):
    dd = tmp_path / "data"
    live = _existing_live(dd, tmp_path)
    proc, run_dir = _start_in_training(tmp_path, dd)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-2000:]
    assert "RESULT interrupted" in out
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "interrupted" and "SIGTERM" in rec["reason"] and "'train'" in rec["reason"]
    assert rec["finished_at"]
    assert (dd / "adapters" / "live.json").read_bytes() == live
    assert [v.version for v in adapters.list_versions(dd)] == ["v0001"]
    assert not list((dd / "adapters").glob(".staging-*"))
    assert runs.load_state(dd)["consolidated"] == {}


def test_kill_9_leaves_live_and_next_start_marks_failed(tmp_path):
    dd = tmp_path / "data"
    live = _existing_live(dd, tmp_path)
    proc, run_dir = _start_in_training(tmp_path, dd)
    proc.kill()
    proc.communicate(timeout=60)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert (dd / "adapters" / "live.json").read_bytes() == live
    h = runs.start_run(dd)  # what the next consolidation does first
    h.finish("skipped", "test")
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "failed" and "process died" in rec["reason"]
