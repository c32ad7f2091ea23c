"""SIGKILL at any step of an ingest leaves the store before the document or fully after it.

A child process ingests a document and kills itself (SIGKILL, no cleanup) at a
chosen point: during a model call, in the middle of the commit transaction
(after the k-th history row or operation is written), or after the commit but
before the vector index is updated. The parent then compares the store with the
state before the document and with a reference run that was not killed.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import snapshot

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from agent.app import App
    from agent.config import config_from_dict
    from stores.testing import HashEmbedder
    from graphs.testing import FakeLLM
    from graphs.ingest import ingest_document
    from stores.sqlite import Store
    from stores.vector import FactIndex
    from tests.helpers import doc, extracted, fact

    data, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    kill = lambda: os.kill(os.getpid(), signal.SIGKILL)
    calls = {{"llm": 0, "history": 0, "op": 0}}

    def answer(prompt, schema, step):
        calls["llm"] += 1
        if mode == "llm" and calls["llm"] == n:
            kill()
        if step == "extract":
            if "Maria Lopez is CEO" in prompt.rsplit("Text (", 1)[1]:
                return extracted(fact("Maria Lopez", "is CEO of", "Northwind"))
            return extracted(fact("John Smith", "is CEO of", "Northwind"), fact("John Smith", "was CFO of", "Globex"))
        if step == "classify":
            return {{"1": "make_false"}}
        return fact("Maria Lopez", "is chair of", "Northwind")

    if mode == "history":
        orig_h = Store.add_history
        def add_history(self, *a, **k):
            calls["history"] += 1
            if calls["history"] == n:
                kill()
            return orig_h(self, *a, **k)
        Store.add_history = add_history
    if mode == "op":
        orig_o = Store.log_operation
        def log_operation(self, *a, **k):
            calls["op"] += 1
            if calls["op"] == n:
                kill()
            return orig_o(self, *a, **k)
        Store.log_operation = log_operation
    if mode == "sync":
        orig_s = FactIndex.sync
        def sync(self, store, *a, **k):
            if store.pending_index(1):
                kill()
            return orig_s(self, store, *a, **k)
        FactIndex.sync = sync

    which, revision = sys.argv[4], sys.argv[5]
    cfg = config_from_dict({{"data_dir": data, "ingest": {{"revision": revision, "extract_unit": "chunk"}}}})  # the responder reads chunk prompts
    app = App(cfg, llm=FakeLLM(responder=answer), embedder=HashEmbedder())
    if revision == "keys":  # no model call: a new chief executive and the old one's new job
        d = doc("d1", "Maria Lopez is the chief executive of Northwind Logistics.", "2020-01-01") if which == "d1" else \\
            doc("d2", "Quinn Park is the chief executive of Northwind Logistics. Maria Lopez left Northwind Logistics and "
                      "joined Globex Shipping.", "2022-06-01")
    else:
        d = doc("d1", "Maria Lopez is CEO of Northwind.", "2020-01-01") if which == "d1" else \\
            doc("d2", "John Smith, formerly CFO of Globex, replaced Maria Lopez as CEO of Northwind.", "2022-06-01")
    r = ingest_document(d, app.ingest_context())
    print(r.status, app.index.count())
    """
)


def _run(tmp: Path, data: Path, mode: str, n: int, which: str, revision: str) -> subprocess.CompletedProcess:
    script = tmp / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    return subprocess.run(
        [sys.executable, str(script), str(data), mode, str(n), which, revision],
        capture_output=True, text=True, timeout=120, cwd=str(ROOT),
    )


def _open_snapshot(data: Path) -> dict:
    from stores.sqlite import Store

    s = Store(data / "knowd.sqlite")
    try:
        return snapshot(s)
    finally:
        s.close()


@pytest.mark.slow
@pytest.mark.parametrize("revision", ["model", "keys"])
def test_sigkill_at_every_step_is_all_or_nothing(tmp_path: Path, revision: str):
    def _child(tmp: Path, data: Path, mode: str, n: int, which: str) -> subprocess.CompletedProcess:
        return _run(tmp, data, mode, n, which, revision)

    base = tmp_path / "base"
    r = _child(tmp_path, base, "none", 0, "d1")
    assert r.returncode == 0 and r.stdout.startswith("done"), r.stderr
    before = _open_snapshot(base)

    ref = tmp_path / "ref"
    shutil.copytree(base, ref)
    r = _child(tmp_path, ref, "none", 0, "d2")
    assert r.returncode == 0 and r.stdout.startswith("done"), r.stderr
    after = _open_snapshot(ref)
    assert after != before
    n_hist = len(after["history"]) - len(before["history"])
    n_ops = len(after["operations"]) - len(before["operations"])
    assert n_hist >= 4 and n_ops >= 4

    points = [("llm", k) for k in (1, 2, 3)] if revision == "model" else []  # revision by keys calls no model
    points += [("history", k) for k in range(1, n_hist + 1)]
    points += [("op", k) for k in range(1, n_ops + 1)] + [("sync", 0)]
    outcomes = {}
    for mode, k in points:
        data = tmp_path / f"{mode}{k}"
        shutil.copytree(base, data)
        r = _child(tmp_path, data, mode, k, "d2")
        assert r.returncode == -9, f"{mode}{k}: child was not killed: {r.stdout} {r.stderr}"
        got = _open_snapshot(data)
        assert got in (before, after), f"half-applied state after kill at {mode}:{k}"
        outcomes[(mode, k)] = "after" if got == after else "before"
        # restart: the document is ingested (or skipped) and the index catches up
        r = _child(tmp_path, data, "none", 0, "d2")
        assert r.returncode == 0, r.stderr
        status, n_indexed = r.stdout.split()
        assert status in ("done", "skipped")
        assert _open_snapshot(data) == after
        assert int(n_indexed) == len(after["facts"])
    assert outcomes[("sync", 0)] == "after"  # committed, index behind: caught up on restart
    assert all(v == "before" for (m, _), v in outcomes.items() if m != "sync")
