"""llama.cpp's log lines go to the `llama_cpp` logger, below WARNING, never to the terminal:
the callback is installed before the llama backend loads a model, lines sent in pieces are
joined, the C library really calls it (with ggml's level numbers: 4 is an error), and a
`knowd chat`-style log setup (warnings on stderr) prints none of it. No model is loaded.

With the real bundled model (a few seconds of CPU; not run by the suite):

    printf 'Who wrote Hamlet?\\n/quit\\n' | flock /tmp/knowd-cpu.lock .venv/bin/knowd chat --closed-book 2>&1 \\
        | grep -c -E 'llama_|ggml_|gguf_|SWA'

prints 0 (`--closed-book` makes the model load and answer; before the fix it counted the
`llama_kv_cache_iswa: using full-size SWA cache` line and its kind); with `knowd -v chat
--closed-book` they appear as `INFO llama_cpp: warn: llama_kv_cache_iswa: ...`.
"""
from __future__ import annotations

import ctypes
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from agent import llama_log  # noqa: E402
from agent.llama_log import installed, route_llama_logs  # noqa: E402

SWA = b"llama_kv_cache_iswa: using full-size SWA cache (ref: https://github.com/ggml-org/llama.cpp/pull/13194#issuecomment-2868343055)\n"


@pytest.fixture(autouse=True)
def llama_default_logging() -> Iterator[None]:
    """Each test starts and ends with llama-cpp-python's own callback and no half line."""
    from llama_cpp import _logger

    llama_log._pending.clear()
    llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    yield
    llama_log._pending.clear()
    llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def records(caplog) -> list[tuple[str, int, str]]:  # noqa: ANN001
    return [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name == "llama_cpp"]


def test_route_installs_the_callback():
    assert not installed()  # llama-cpp-python's printing callback
    route_llama_logs()
    assert installed()
    route_llama_logs()  # idempotent: the same function pointer, still alive
    assert installed()


def test_lines_are_joined_and_logged_below_warning(caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="llama_cpp")
    on_log = llama_log._on_log
    on_log(3, SWA, None)
    on_log(2, b"llama_model_loader: loaded meta data", None)  # a line in three pieces
    on_log(5, b" with 38 key-value pairs", None)
    on_log(5, b"\n", None)
    on_log(2, b"load_tensors: ", None)
    on_log(4, b"llama_model_load: error loading model\nsecond line\n", None)  # a new message ends the open line
    on_log(1, None, None)
    assert records(caplog) == [
        ("llama_cpp", logging.INFO, "warn: " + SWA.decode().strip()),
        ("llama_cpp", logging.DEBUG, "info: llama_model_loader: loaded meta data with 38 key-value pairs"),
        ("llama_cpp", logging.DEBUG, "info: load_tensors:"),
        ("llama_cpp", logging.INFO, "error: llama_model_load: error loading model"),
        ("llama_cpp", logging.INFO, "error: second line"),
    ]
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_the_library_calls_it_with_ggml_levels(caplog, capfd, tmp_path: Path):
    """A file that is not a model: llama.cpp and gguf report it through the callback."""
    caplog.set_level(logging.DEBUG, logger="llama_cpp")
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\x00" * 28)
    route_llama_logs()
    model = llama_cpp.llama_model_load_from_file(str(bogus).encode(), llama_cpp.llama_model_default_params())
    assert not model
    got = records(caplog)
    assert got and all(level == logging.INFO and msg.startswith("error: ") for _, level, msg in got), got
    assert any("failed to load model" in msg for _, _, msg in got)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # nothing printed by llama.cpp itself


def test_chat_shows_no_llama_lines_unless_verbose():
    """`knowd chat` logs warnings to stderr (`knowd -v chat`: everything)."""
    root = logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    try:
        for level, expect in ((logging.WARNING, ""), (logging.DEBUG, "warn: llama_kv_cache_iswa: using full-size SWA cache")):
            stream = io.StringIO()
            root.handlers[:] = [logging.StreamHandler(stream)]
            root.setLevel(level)
            llama_log._on_log(3, SWA, None)
            assert (expect in stream.getvalue()) if expect else stream.getvalue() == ""
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)


def test_the_llama_backend_routes_before_it_loads_a_model(monkeypatch, tmp_path: Path):
    from agent.llm import LlamaCppLLM

    seen = []

    class FakeLlama:
        def __init__(self, **kw):  # noqa: ANN003
            seen.append((kw["verbose"], installed()))

    monkeypatch.setattr(llama_cpp, "Llama", FakeLlama)
    LlamaCppLLM(tmp_path / "model.gguf")
    assert seen == [(False, True)]
