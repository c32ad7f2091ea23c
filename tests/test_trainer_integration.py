"""A whole consolidation on the real bundled model (llama.cpp generation, transformers training)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("llama_cpp")


@pytest.mark.integration
@pytest.mark.slow
def test_real_model_consolidation_end_to_end(tmp_path):
    from trainer.config import TrainerConfig
    from trainer.run import consolidate
    from trainer.selection import MemoryStore
    from trainer.testing import cached_test_models, facts_for

    paths = cached_test_models()
    dd = tmp_path / "data"
    dd.mkdir()
    # share the converted checkpoint with the other tests (converted once from the cached GGUF)
    (paths["root"] / "models").mkdir(exist_ok=True)
    (dd / "models").symlink_to(paths["root"] / "models", target_is_directory=True)
    facts = facts_for([("Karen Bass", "the mayor of Los Angeles"), ("Keira Walsh", "a player of FC Barcelona")])
    cfg = TrainerConfig.from_dict({"max_steps": 4, "eval_every": 2, "general_probes": 6, "arithmetic_train_probes": 4,
                                   "n_paraphrase": 3, "n_multihop": 2, "learning_rate": 3e-3})
    res = consolidate(cfg, MemoryStore(facts), dd, progress=False, base_gguf=lambda: paths["gguf"])
    assert res.status in ("shipped", "refused"), res.reason
    rec = json.loads((res.run_dir / "run.json").read_text())
    assert rec["generator"] == "llama_cpp" and rec["train"]["steps"] >= 1
    assert (res.run_dir / "adapter" / "adapter.gguf").stat().st_size > 100_000
    ev = json.loads((res.run_dir / "eval.json").read_text())
    before = {(a["fact_id"], a["question"]): a["answer"] for a in ev["before"]["answers"]}
    after = {(a["fact_id"], a["question"]): a["answer"] for a in ev["after"]["answers"]}
    changed = [k for k in after if after[k] != before[k]] + [p for p in ev["after"]["probe_answers"] if not p["same"]]
    assert changed, "the exported adapter changed no answer in llama.cpp"
    assert (res.run_dir / "report.html").is_file() and (res.run_dir / "loss.png").is_file()
    if res.status == "shipped":
        assert json.loads((dd / "adapters" / "live.json").read_text())["version"] == res.adapter_version
    else:
        assert not (dd / "adapters" / "live.json").exists()
