"""One thread for everything that runs the LLM or the embedder.

The LLM is not thread-safe, and the llama backend's lock must be released by the thread
that took it, which a streaming generator advanced from Starlette's thread pool would
not guarantee. So every face (API, console, MCP) hands model work to this one thread:
chat answers, query embeddings (search), and the index sync after a revert.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class ModelThread:
    """A single worker thread; `run` awaits a function on it, `submit` queues one."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="knowd-model")

    def submit(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Future:
        return self._pool.submit(fn, *args, **kw)

    async def run(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.wrap_future(self.submit(fn, *args, **kw))

    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run `fn` on the model thread and wait (from a plain thread: the CLI, a test)."""
        return self.submit(fn, *args, **kw).result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
