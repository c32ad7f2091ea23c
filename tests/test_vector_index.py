"""The Chroma index: embedded and against a real `chroma run` server; rebuild from the store."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from stores.testing import HashEmbedder
from stores.sqlite import Store
from stores.vector import FactIndex

T0 = datetime(2021, 1, 1, tzinfo=timezone.utc)
T1 = datetime(2022, 1, 1, tzinfo=timezone.utc)


def _seed(store: Store) -> tuple[str, str]:
    with store.transaction() as c:
        a = store.insert_fact(c, "Maria Lopez is CEO of Northwind.", "Maria Lopez", "is CEO of", "Northwind")
        store.add_history(c, a, T0, True, None, "extract", None)
        b = store.insert_fact(c, "John Smith is CEO of Northwind.", "John Smith", "is CEO of", "Northwind")
        store.add_history(c, b, T1, True, None, "extract", None)
        store.add_history(c, a, T1, False, None, "make_false", None)
    return a, b


def _exercise(index: FactIndex, store: Store) -> None:
    a, b = _seed(store)
    assert index.sync(store) == 2 and store.pending_index() == []
    now = [fid for fid, _ in index.query("CEO of Northwind", 5)]
    assert now == [b]  # the stale fact is not "current" in the index
    every = {fid for fid, _ in index.query("CEO of Northwind", 5, current_only=False)}
    assert every == {a, b}
    assert index.rebuild(store) == 2 and index.count() == 2


def test_embedded_index(tmp_path: Path):
    store = Store(tmp_path / "s.sqlite")
    _exercise(FactIndex(HashEmbedder(), path=tmp_path / "chroma"), store)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path: Path):
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(exe).exists():
        pytest.skip("the chroma CLI is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma server did not start")
    yield port
    proc.terminate()
    proc.wait(10)


def test_server_index(tmp_path: Path, chroma_server: int):
    store = Store(tmp_path / "s.sqlite")
    index = FactIndex(HashEmbedder(), host="127.0.0.1", port=chroma_server)
    _exercise(index, store)
    # a second client sees the same collection: the data lives in the server
    other = FactIndex(HashEmbedder(), host="127.0.0.1", port=chroma_server)
    assert other.count() == 2


def test_config_selects_server_mode(tmp_path: Path, chroma_server: int):
    from agent.app import App
    from agent.config import config_from_dict

    cfg = config_from_dict({"data_dir": str(tmp_path / "d"), "index": {"mode": "server", "port": chroma_server}})
    app = App(cfg, embedder=HashEmbedder())
    assert app.index.count() == 0
    _seed(app.store)
    app.index.sync(app.store)
    assert app.index.count() == 2
