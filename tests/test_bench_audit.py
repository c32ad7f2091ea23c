"""The store audit (bench/harness/audit.py): matching, the measures, world gold, the command."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from click.testing import CliRunner

from agent.cli import cli
from bench.harness import audit
from bench.harness.world import generate_world
from tests.conftest import ROOT


def t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)


CEO = audit.GoldFact("ceo", "Maria Lopez is the CEO of Northwind.", [["Maria Lopez", "Lopez"], ["Northwind"]], ["chief executive", "CEO"],
                     t("2024-01-15"), t("2024-07-08"))
LEFT = audit.GoldFact("left", "Maria Lopez stepped down.", [["Maria Lopez"], ["Northwind"]], ["stepped down"], t("2024-07-08"), past=True)
HQ = audit.GoldFact("hq", "Northwind moves to Hamburg.", [["Northwind"], ["Hamburg"]], ["based", "moved"], t("2024-09-02"),
                    unsure=(t("2024-05-23"), t("2024-09-02")))


def test_matching_needs_every_entity_a_cue_and_the_same_polarity() -> None:
    assert CEO.matches("Northwind Logistics has appointed Maria Lopez as its chief executive.")
    assert not CEO.matches("Maria Lopez has stepped down as chief executive of Northwind.")  # ended: a past statement
    assert LEFT.matches("Maria Lopez has stepped down as chief executive of Northwind.")
    assert not CEO.matches("Lopezia is the CEO of Northwind.")  # whole words
    assert HQ.truth(t("2024-06-01")) is None and HQ.truth(t("2024-10-01")) is True and HQ.truth(t("2024-01-01")) is False


def test_a_checkpoint_counts_true_stale_unsupported_malformed_and_recall() -> None:
    facts = ["Northwind Logistics has appointed Maria Lopez as its chief executive.",  # stale in August
             "Maria Lopez has stepped down as chief executive of Northwind.",  # true
             "Northwind won a prize.",  # unsupported
             "its head office is in Hamburg Hamburg."]  # malformed
    cp = audit.checkpoint(facts, [CEO, LEFT, HQ], t("2024-08-01"))
    assert (cp.current, cp.true, cp.stale, cp.unsupported, cp.malformed) == (4, 1, 1, 1, 1)
    assert cp.precision == 0.25 and cp.stale_rate == 0.25
    assert (cp.recall_hit, cp.recall_total) == (1, 1)  # LEFT; HQ is unsure then, so not required
    cp = audit.checkpoint(facts[:1], [CEO, LEFT, HQ], t("2024-03-01"))
    assert cp.precision == 1.0 and cp.recall == 1.0


def test_world_gold_holds_every_relation_over_time(tmp_path: Path) -> None:
    w = generate_world("multi-hop", 2)
    gold = audit.world_gold(w)
    kinds = {g.id.split(":")[0] for g in gold}
    assert {"company", "boss", "coworker", "salary", "hours", "hobby", "runs", "company_hours", "pay"} <= kinds
    mover = next(tr for tr in w.transitions if tr.kind == "job")
    was = [g for g in gold if g.id == f"company:{mover.person}|{mover.detail['from']}" and g.end == mover.time]
    assert was, "the mover's old employer is true until the move"
    audit.dump_gold(gold, tmp_path / "g.json")
    again = audit.load_gold(tmp_path / "g.json")
    assert [(g.id, g.start, g.end) for g in again] == [(g.id, g.start, g.end) for g in gold]


def test_knowd_bench_audit_on_a_world_writes_its_tables(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\nembeddings:\n  model: bundled\n", encoding="utf-8")
    run = CliRunner().invoke
    r = run(cli, ["--config", str(cfg), "bench", "generate", "--world", "multi-hop", "--seed", "3", "--changes", "2",
                  "--out", "w.jsonl", "--gold-out", "w.gold.json"])
    assert r.exit_code == 0, r.output
    r = run(cli, ["--config", str(cfg), "bench", "audit", "w.jsonl", "--gold", "w.gold.json", "--system", "knowd",
                  "--system", "fact-rag", "--out", "out"])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "out" / "audit.json").read_text())
    k, f = res["systems"]["knowd"]["summary"], res["systems"]["fact-rag"]["summary"]
    assert k["precision"] >= 0.95 and k["stale_rate"] == 0.0  # revision by keys on the world it was built on
    assert f["stale_rate"] > k["stale_rate"]  # without revision, what changed stays current
    assert "| knowd |" in (tmp_path / "out" / "audit.md").read_text()
    assert (tmp_path / "out" / "audit.png").stat().st_size > 1000


def test_the_samples_gold_file_loads() -> None:
    gold = audit.load_gold(ROOT / "bench" / "gold" / "samples.yaml")
    assert len(gold) > 50 and all(g.entities and g.cues for g in gold)
