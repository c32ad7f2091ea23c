"""config.yaml's defaults with the real bundled models (spaCy parse, MiniLM, Gemma 3 270M):
the shipped samples ingested by revision by keys, then questions answered the way
`knowd chat` and the HTTP API answer them. The full gold run over the HTTP API is
bench/samples_api.py; this test checks the same path on a handful of questions.

    flock /tmp/knowd-cpu.lock .venv/bin/python -m pytest tests/test_keys_integration.py -m integration -s
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from graphs.chat import ChatAgent
from graphs.ingest import ingest_document

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def samples_app(tmp_path_factory):  # noqa: ANN001
    from agent.app import App
    from agent.config import load_config
    from agent.daemon import resolve_options
    from connectors.registry import build_connector

    base = tmp_path_factory.mktemp("keys-real")
    models = base / "data" / "models"
    models.mkdir(parents=True)
    have = ROOT / "data" / "models"
    if have.is_dir():  # the bundled GGUF, when it was assembled in the checkout already
        for f in have.iterdir():
            if f.is_file() and not f.name.startswith("."):
                (models / f.name).symlink_to(f.resolve())
    shipped = load_config(ROOT / "config.yaml")
    app = App(shipped.model_copy(update={"data_dir": str(base / "data")}))
    docs = []
    for c in shipped.connectors:
        docs += build_connector(c.kind, c.name, resolve_options(shipped, c)).poll({}).documents
    for d in sorted(docs, key=lambda d: d.time):
        r = ingest_document(d, app.ingest_context())
        assert r.status == "done" and r.calls == 0, (d.id, r.error)
    yield app
    app.close()


def test_the_samples_answered_from_the_store_with_the_real_models(samples_app) -> None:  # noqa: ANN001
    app = samples_app
    assert app.llm.meter.calls == 0  # ingest asked the model nothing
    agent = ChatAgent(SimpleNamespace(store=app.store, index=app.index, llm=app.llm), app.cfg.chat)
    for q, want in [
        ("Who is the chief executive of Northwind Logistics?", "Quinn Park"),
        ("Who was the chief executive of Northwind Logistics in March 2024?", "Maria Lopez"),
        ("Where is Globex Shipping's head office?", "Rotterdam"),
        ("Which company operates the Gull Island ferry?", "Tidewater Transit"),
        ("Which company operated the Gull Island ferry in June 2024?", "BlueWake Lines"),
    ]:
        r = agent.ask(q)
        print(f"{q} -> {r.answer}")
        assert want in r.answer and r.citations, (q, r.answer)
    # a choice the store decides, and one it cannot (the model's likelihood answers)
    r = agent.ask("Who runs the Lyon warehouse?", mode="choice", choices=["Quinn Park", "Amara Osei", "Luc Bernard"])
    assert r.chosen == ["Amara Osei"]
    calls = app.llm.meter.calls
    r = agent.ask("Which bank finances Harbor City's library?", mode="choice", choices=["Nordbank", "Harbor Mutual"])
    assert r.chosen and app.llm.meter.calls > calls
