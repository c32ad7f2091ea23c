"""The live adapter applied per request (agent/llm.py) with the real bundled model and a
real llama.cpp LoRA: with routing, a request outside the adapter's scope is answered
byte for byte as by the base model alone, before and after in-scope requests (the
prompt cache is dropped on every switch); an in-scope request gets the adapter."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("llama_cpp")

from tests.test_trainer_export import _random_adapter, _real_dims  # noqa: E402

QA = "Question: Who wrote Hamlet?\nAnswer: William Shakespeare\n\nQuestion: {q}\nAnswer:"
UNRELATED = ["What is the capital of France?", "12+5=", "Who painted the Mona Lisa?"]
IN_SCOPE = "Who does Karen Bass work for?"
CHOICES = [" Paris", " London", " Rome"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # noqa: ANN001
    from trainer.export import export_gguf
    from trainer.scope import Scope
    from trainer.testing import cached_test_models

    gguf = cached_test_models()["gguf"]
    d = _real_dims(gguf)
    root = tmp_path_factory.mktemp("routing")
    vdir = root / "adapters" / "v0001"
    ad = export_gguf(_random_adapter(vdir, d), vdir / "adapter.gguf", num_layers=d["layers"])
    Scope(["Karen Bass"]).save(vdir / "scope.json")
    live = root / "adapters" / "live.json"
    live.write_text(json.dumps({"version": "v0001", "gguf": str(ad), "scale": 1.0}))
    return gguf, live


def _answers(llm, questions):  # noqa: ANN001
    out = []
    for q in questions:
        out.append(llm.complete(QA.format(q=q), max_tokens=8, stop=["\n"], route=q).text)
        out.append(tuple(llm.score_choices(QA.format(q=q), CHOICES, route=q)))
    return out


def test_routing_leaves_unrelated_requests_byte_identical(setup):
    from agent.llm import LlamaCppLLM

    gguf, live = setup
    base = LlamaCppLLM(gguf, n_ctx=256, n_threads=2)
    want = _answers(base, UNRELATED)
    in_scope_base = base.complete(QA.format(q=IN_SCOPE), max_tokens=8, stop=["\n"], route=IN_SCOPE).text

    routed = LlamaCppLLM(gguf, n_ctx=256, n_threads=2, adapter_file=live, adapter_mode="routed")
    assert routed.adapter["version"] == "v0001" and routed.scope.covers(IN_SCOPE)
    assert _answers(routed, UNRELATED) == want and not routed.adapter_active
    got = routed.complete(QA.format(q=IN_SCOPE), max_tokens=8, stop=["\n"], route=IN_SCOPE).text
    assert routed.adapter_active and got != in_scope_base  # the adapter answered
    # back out of scope: the cache computed with the adapter must not leak into these
    assert _answers(routed, UNRELATED) == want and not routed.adapter_active
    # a call without a route (ingest, data generation) is the base model's
    assert routed.complete(QA.format(q=IN_SCOPE), max_tokens=8, stop=["\n"]).text == in_scope_base

    off = LlamaCppLLM(gguf, n_ctx=256, n_threads=2, adapter_file=live, adapter_mode="off")
    assert off.complete(QA.format(q=IN_SCOPE), max_tokens=8, stop=["\n"], route=IN_SCOPE).text == in_scope_base

    always = LlamaCppLLM(gguf, n_ctx=256, n_threads=2, adapter_file=live, adapter_mode="always")
    assert _answers(always, UNRELATED) != want  # without routing the adapter moves everything


def test_the_live_adapter_is_dropped_when_the_pointer_goes(setup, tmp_path):
    from agent.llm import LlamaCppLLM

    gguf, live = setup
    ptr = tmp_path / "live.json"
    ptr.write_text(live.read_text())
    llm = LlamaCppLLM(gguf, n_ctx=256, n_threads=2, adapter_file=ptr, adapter_mode="always")
    with_adapter = llm.complete(QA.format(q=UNRELATED[0]), max_tokens=8, stop=["\n"]).text
    ptr.unlink()
    without = llm.complete(QA.format(q=UNRELATED[0]), max_tokens=8, stop=["\n"]).text
    base = LlamaCppLLM(gguf, n_ctx=256, n_threads=2).complete(QA.format(q=UNRELATED[0]), max_tokens=8, stop=["\n"]).text
    assert llm.adapter is None and without == base and with_adapter != base
