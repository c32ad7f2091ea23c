"""Shared fixtures: a fresh data dir, a fake LLM that records its calls, a fast embedder.

Markers: `integration` tests use the real bundled model (slow, still offline);
run only the fast ones with `pytest -m "not integration"`.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: uses the real bundled models (slow, offline)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


def _erase_config(tmp_path: Path):
    """The ERASE path (revision: model) with whole-chunk extraction, and the model answering:
    the unit tests written for it queue the fake model's answers one chunk at a time."""
    from agent.config import config_from_dict

    return config_from_dict(
        {"data_dir": str(tmp_path / "data"), "ingest": {"revision": "model", "extract_unit": "chunk"}, "chat": {"lookup": False}},
        base_dir=tmp_path,
    )


def _shipped_config(tmp_path: Path):
    from agent.config import config_from_dict

    return config_from_dict({"data_dir": str(tmp_path / "data")}, base_dir=tmp_path)


@pytest.fixture
def cfg(tmp_path: Path):
    """config.yaml's defaults (revision by keys, answers from the store's structure first):
    the path users run. Tests of the ERASE path ask for `erase_cfg` / `erase_app` by name."""
    return _shipped_config(tmp_path)


@pytest.fixture
def erase_cfg(tmp_path: Path):
    """The ERASE revision (`ingest.revision: model`), whole chunks, lookup off: for tests of
    that path and tests that script the fake model's extract / classify / rewrite answers."""
    return _erase_config(tmp_path)


@pytest.fixture
def keyed_cfg(tmp_path: Path):
    """config.yaml's defaults, by the name the keyed tests use (the same as `cfg`)."""
    return _shipped_config(tmp_path)


@pytest.fixture
def fake_llm():
    from graphs.testing import FakeLLM

    return FakeLLM()


@pytest.fixture
def app(cfg, fake_llm):
    """An App over a temp data dir with the fake LLM and the hashing embedder."""
    from agent.app import App
    from stores.testing import HashEmbedder

    a = App(cfg, llm=fake_llm, embedder=HashEmbedder())
    yield a
    a.close()


@pytest.fixture
def erase_app(erase_cfg, fake_llm):
    """`app` on the ERASE revision (`erase_cfg`), the fake LLM and the hashing embedder."""
    from agent.app import App
    from stores.testing import HashEmbedder

    a = App(erase_cfg, llm=fake_llm, embedder=HashEmbedder())
    yield a
    a.close()
