"""llama.cpp's own log lines go to Python logging (the `llama_cpp` logger), never straight to
the terminal.

llama.cpp and ggml print their diagnostics through one process-wide callback
(`llama_log_set`). llama-cpp-python installs its own when imported: it prints to stderr
whatever its level table calls an error. That table predates ggml's current levels
(NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5: the library calls back with 4 for an
error, see tests/test_llama_log.py), so every *warning* counts as an error and is
printed even with `verbose=False`: "llama_kv_cache_iswa: using full-size SWA cache"
landed in the middle of `knowd chat`, while real errors (4, "debug" to it) were dropped.

`route_llama_logs()` replaces that callback with `_on_log`, which joins the pieces of a
line (llama.cpp sends some lines in parts, the later ones as CONT) and logs each whole
line on the `llama_cpp` logger, below WARNING: llama.cpp's warnings and errors at INFO,
its info and debug chatter (the model's metadata, tensor by tensor) at DEBUG. They are
the library's diagnostics; every failure that matters reaches knowd as a return code
and is reported as a BackendError with its own message. So `knowd chat` (which shows
warnings) stays clean, `knowd -v chat` shows everything, and the daemon's log (level
info) keeps llama.cpp's warnings and errors as `log` events with `logger: llama_cpp`.
"""
from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

log = logging.getLogger("llama_cpp")

# ggml_log_level -> (our logging level, the name llama.cpp gave it)
LEVELS = {
    0: (logging.DEBUG, "none"),
    1: (logging.DEBUG, "debug"),
    2: (logging.DEBUG, "info"),
    3: (logging.INFO, "warn"),
    4: (logging.INFO, "error"),
}
GGML_LOG_LEVEL_CONT = 5

_lock = threading.Lock()
_pending: list[str] = []  # the pieces of a line not yet ended by "\n"
_pending_level = 2
_callback: Any = None  # the ctypes function pointer: kept alive here, or llama.cpp would call freed memory


def _on_log(level: int, text: bytes | None, user_data: Any = None) -> None:
    """llama.cpp's log callback. Never raises (an exception cannot cross into C)."""
    global _pending_level
    try:
        piece = (text or b"").decode("utf-8", "replace")
        with _lock:
            if level != GGML_LOG_LEVEL_CONT:
                if _pending:  # a new message while a line was open: that line is complete
                    _emit(_pending_level, "".join(_pending))
                    _pending.clear()
                _pending_level = level
            _pending.append(piece)
            joined = "".join(_pending)
            if "\n" not in joined:
                return
            *lines, rest = joined.split("\n")
            _pending[:] = [rest] if rest else []
            line_level = _pending_level
        for line in lines:
            _emit(line_level, line)
    except Exception:  # noqa: BLE001 - at interpreter shutdown logging may be half gone
        pass


def _emit(level: int, line: str) -> None:
    line = line.rstrip()
    if line:
        py_level, name = LEVELS.get(level, (logging.DEBUG, str(level)))
        log.log(py_level, "%s: %s", name, line)


def route_llama_logs() -> None:
    """Install `_on_log` as llama.cpp's log callback (once per process; the callback is
    global to the process, so this covers every model loaded after it). Call it after
    importing llama_cpp, whose import installs the printing callback."""
    global _callback
    import llama_cpp

    if _callback is None:
        _callback = llama_cpp.llama_log_callback(_on_log)
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def installed() -> bool:
    """Whether llama.cpp's current log callback is `_on_log`."""
    if _callback is None:
        return False
    import llama_cpp

    current = llama_cpp.llama_log_callback()
    user_data = ctypes.c_void_p()
    llama_cpp.llama_log_get(ctypes.byref(current), ctypes.byref(user_data))
    return ctypes.cast(current, ctypes.c_void_p).value == ctypes.cast(_callback, ctypes.c_void_p).value
