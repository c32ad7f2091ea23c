"""LLM backends: in-process llama.cpp (default) and an OpenAI-compatible server, and the
factory that picks one from config.yaml.

Both implement the `LLM` protocol the graphs consume (graphs/llm.py: `complete`,
`score_choices`, `stream`, `count_tokens`, metered, returning `Completion`s); the
scripted fake for tests is graphs/testing.py.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from graphs.llm import LLM, BackendError, Completion, Meter, ModelLimitError

# ---------------------------------------------------------------------------- llama.cpp
class LlamaCppLLM:
    """In-process llama.cpp. Not thread-safe by itself, so every call takes a lock.

    The nightly LoRA adapter (`adapter_file`: the trainer's live.json pointer,
    trainer/adapters.py) is loaded next to the base weights when the pointer changes,
    without restarting the daemon, and applied per request:

    * `adapter: routed` (the default): only to requests whose `route` text (the user's
      question) names something the adapter was trained on (its scope,
      trainer/scope.py); every other request is answered by the base model, exactly as
      if no adapter were live;
    * `always`: to every request; `off`: never.

    Switching the adapter on or off drops the prompt cache (its keys and values were
    computed with the other weights), so a cached prefix never mixes the two.
    """

    def __init__(
        self, model_path: str | Path, n_ctx: int = 2048, n_threads: int | None = None,
        seed: int = 0, adapter_file: str | Path | None = None, adapter_mode: str = "routed",
    ):
        self.model_path = str(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.seed = seed
        self.adapter_file = Path(adapter_file) if adapter_file else None
        self.adapter_mode = adapter_mode
        self.adapter: dict[str, Any] | None = None
        self.scope: Any = None  # trainer.scope.Scope of the live adapter
        self.adapter_active = False  # whether the last call ran with the adapter
        self._adapter_mtime: float | None = None
        self._lora: Any = None  # the llama.cpp adapter handle
        self.name = Path(self.model_path).name
        self.meter = Meter()
        self._lock = threading.RLock()
        self._grammars: dict[str, Any] = {}
        self._llm = self._load()
        self._check_adapter()

    def _load(self) -> Any:
        from llama_cpp import Llama  # imported here: `knowd facts` etc. need no model

        from agent.llama_log import route_llama_logs

        route_llama_logs()  # llama.cpp's own log lines to the `llama_cpp` logger, not the terminal
        try:
            return Llama(model_path=self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads, seed=self.seed, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"could not load model {self.model_path}: {e}") from None

    def _check_adapter(self) -> None:
        """Load (or drop) the live LoRA adapter when its pointer file changes."""
        if self.adapter_file is None:
            return
        try:
            mtime = self.adapter_file.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime == self._adapter_mtime:
            return
        self._adapter_mtime = mtime
        live = None
        if mtime is not None:
            try:
                live = json.loads(self.adapter_file.read_text())
            except (OSError, json.JSONDecodeError):
                live = None
        want = live.get("gguf") if live else None
        have = self.adapter.get("gguf") if self.adapter else None
        if want == have:
            return
        if want and not Path(want).exists():
            return  # pointer to a missing file: keep what is loaded
        self._use(False)
        self._free_lora()
        self.adapter, self.scope = None, None
        if want:
            import llama_cpp

            from trainer.scope import SCOPE_FILE, Scope

            handle = llama_cpp.llama_adapter_lora_init(self._llm._model.model, str(want).encode("utf-8"))
            if not handle:
                raise BackendError(f"could not load the LoRA adapter {want}")
            self._lora, self.adapter = handle, live
            self.scope = Scope.load(Path(want).parent / SCOPE_FILE)

    def _free_lora(self) -> None:
        if self._lora is not None:
            import llama_cpp

            llama_cpp.llama_adapter_lora_free(self._lora)
            self._lora = None

    def _routes_to_adapter(self, route: str | None) -> bool:
        if self._lora is None or self.adapter_mode == "off":
            return False
        if self.adapter_mode == "always":
            return True
        # an adapter shipped without a scope (before routing) was gated as applied to everything
        return self.scope is None or self.scope.covers(route)

    def _use(self, on: bool) -> None:
        """Attach or detach the adapter; a switch empties the prompt cache."""
        if on == self.adapter_active:
            return
        import ctypes

        import llama_cpp

        if on:
            arr = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._lora)
            scales = (ctypes.c_float * 1)(float((self.adapter or {}).get("scale", 1.0)))
            failed = llama_cpp.llama_set_adapters_lora(self._llm._ctx.ctx, arr, 1, scales)
        else:
            failed = llama_cpp.llama_set_adapters_lora(self._llm._ctx.ctx, None, 0, None)
        if failed:
            raise BackendError("llama.cpp refused to switch the LoRA adapter")
        self._llm.reset()
        self.adapter_active = on

    def _prepare(self, route: str | None) -> None:
        self._check_adapter()
        self._use(self._routes_to_adapter(route))

    def _grammar(self, schema: dict) -> str:
        from agent.llama_decode import schema_to_gbnf

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = schema_to_gbnf(schema)
        return self._grammars[key]

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False))

    def _fit(self, prompt: str, max_tokens: int) -> int:
        """Clamp max_tokens so prompt + output fit the context; refuse prompts that cannot."""
        n = self.count_tokens(prompt) + 1
        room = self.n_ctx - n
        if room < 8:
            raise ModelLimitError(f"prompt of {n} tokens does not fit the {self.n_ctx}-token context")
        return min(max_tokens, room)

    def complete(
        self, prompt: str, *, max_tokens: int = 256, schema: dict | None = None,
        stop: list[str] | None = None, step: str = "", route: str | None = None,
    ) -> Completion:
        with self._lock:
            self._prepare(route)
            max_tokens = self._fit(prompt, max_tokens)
            t0 = time.perf_counter()
            if schema:
                from agent.llama_decode import generate_constrained

                text, pt, ct, finished = generate_constrained(self._llm, prompt, self._grammar(schema), max_tokens)
                truncated = not finished
            else:
                out = self._llm.create_completion(
                    prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, stop=stop or [], seed=self.seed
                )
                text, pt, ct = out["choices"][0]["text"], out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"]
                truncated = out["choices"][0].get("finish_reason") == "length"
            dt = time.perf_counter() - t0
        self.meter.add(step, pt, ct, dt)
        return Completion(text, prompt, pt, ct, dt, self.name, step, truncated)

    def stream(self, prompt: str, *, max_tokens: int = 256, stop: list[str] | None = None, route: str | None = None) -> Iterator[str]:
        with self._lock:
            self._prepare(route)
            max_tokens = self._fit(prompt, max_tokens)
            t0 = time.perf_counter()
            n = 0
            for part in self._llm.create_completion(
                prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, stop=stop or [], stream=True
            ):
                n += 1
                yield part["choices"][0]["text"]
            self.meter.add("stream", self.count_tokens(prompt), n, time.perf_counter() - t0)

    def score_choices(self, prompt: str, choices: list[str], step: str = "choices", route: str | None = None) -> list[float]:
        """Mean log-probability per token of each choice as a continuation of `prompt`.

        The shared prompt is evaluated once; each choice then re-uses its KV cache
        (rewinding `n_tokens`), so scoring k short choices costs about one prompt.
        """
        import numpy as np

        with self._lock:
            self._prepare(route)
            t0 = time.perf_counter()
            llm = self._llm
            p_toks = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
            seqs = [llm.tokenize((prompt + c).encode("utf-8"), add_bos=True, special=False) for c in choices]
            # the choices may re-tokenise the prompt's last token; share only the common prefix
            common = min([len(p_toks)] + [_common_prefix(p_toks, s) for s in seqs])
            common = max(1, min(common, min(len(s) for s in seqs) - 1))
            if max(len(s) for s in seqs) >= self.n_ctx:
                raise ModelLimitError("prompt and choices do not fit the context")
            llm.reset()
            llm.eval(p_toks[:common])
            base_logits = np.array(_last_logits(llm), dtype=np.float64)
            scores: list[float] = []
            n_eval = common
            for seq in seqs:
                llm.n_tokens = common  # rewind to the shared prefix
                logits = base_logits
                total = 0.0
                tail = seq[common:]
                for tok in tail:
                    total += float(logits[tok] - _logsumexp(logits))
                    llm.eval([tok])
                    n_eval += 1
                    logits = np.array(_last_logits(llm), dtype=np.float64)
                scores.append(total / max(1, len(tail)))
            self.meter.add(step, n_eval, 0, time.perf_counter() - t0)
        return scores


def _last_logits(llm: Any) -> Any:
    import llama_cpp

    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    import numpy as np

    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))


def _logsumexp(x: Any) -> float:
    m = float(x.max())
    import numpy as np

    return m + math.log(float(np.exp(x - m).sum()))


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# ---------------------------------------------------------------------------- OpenAI-compatible
class OpenAICompatLLM:
    """Any OpenAI-compatible server (llama.cpp server, vLLM, Ollama) via /v1/completions."""

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0,
        structured: str = "response_format", n_ctx: int = 8192,
    ):
        import httpx

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = model
        self.n_ctx = n_ctx
        self.structured = structured
        self.meter = Meter()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout_s, headers=headers)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            r = self._http.post(f"{self.base_url}/completions", json=body)
        except httpx.HTTPError as e:
            raise BackendError(f"LLM server {self.base_url}: {e.__class__.__name__}: {e}") from None
        if r.status_code >= 400:
            # 4xx: the server refuses this request (bad key, bad body, too long): asking again
            # cannot help; 408/429 (timeout, rate limit) and 5xx may pass
            kind = ModelLimitError if r.status_code < 500 and r.status_code not in (408, 429) else BackendError
            raise kind(f"LLM server {self.base_url}: HTTP {r.status_code}: {r.text[:200]}")
        return r.json()

    def _schema_fields(self, schema: dict) -> dict[str, Any]:
        if self.structured == "response_format":
            return {"response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}}
        if self.structured == "json_schema":
            return {"json_schema": schema}
        if self.structured == "guided_json":
            return {"guided_json": schema}
        if self.structured == "grammar":
            from agent.llama_decode import schema_to_gbnf

            return {"grammar": schema_to_gbnf(schema)}
        return {}

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # servers differ in tokenizer endpoints; an estimate is enough here

    def complete(
        self, prompt: str, *, max_tokens: int = 256, schema: dict | None = None,
        stop: list[str] | None = None, step: str = "", route: str | None = None,
    ) -> Completion:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
        if stop:
            body["stop"] = stop
        if schema:
            body.update(self._schema_fields(schema))
        t0 = time.perf_counter()
        out = self._post(body)
        dt = time.perf_counter() - t0
        u = out.get("usage") or {}
        pt, ct = int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))
        self.meter.add(step, pt, ct, dt)
        try:
            text = out["choices"][0]["text"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"LLM server {self.base_url}: response has no choices[0].text") from None
        return Completion(text, prompt, pt, ct, dt, self.name, step, out["choices"][0].get("finish_reason") == "length")

    def stream(self, prompt: str, *, max_tokens: int = 256, stop: list[str] | None = None, route: str | None = None) -> Iterator[str]:
        c = self.complete(prompt, max_tokens=max_tokens, stop=stop, step="stream")
        yield c.text

    def score_choices(self, prompt: str, choices: list[str], step: str = "choices", route: str | None = None) -> list[float]:
        """Prompt log-probs via echo (vLLM, llama-cpp-python's server, OpenAI legacy); mean
        over the choice's tokens.

        max_tokens is 1, not 0: llama-cpp-python reads 0 as "until the context is full"
        and would generate (and rank the 262k-word vocabulary for) every token of it.
        The one generated token is ignored: only offsets inside prompt + choice count."""
        scores = []
        t0 = time.perf_counter()
        for ch in choices:
            full = prompt + ch
            out = self._post({"model": self.model, "prompt": full, "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0})
            lp = (out.get("choices") or [{}])[0].get("logprobs") or {}
            offsets, tlp = lp.get("text_offset") or [], lp.get("token_logprobs") or []
            vals = [v for off, v in zip(offsets, tlp) if len(prompt) <= off < len(full) and v is not None]
            if not vals:
                raise ModelLimitError("LLM server does not return prompt logprobs (echo); choice scoring needs them")
            scores.append(sum(vals) / len(vals))
        self.meter.add(step, 0, 0, time.perf_counter() - t0)
        return scores


# ---------------------------------------------------------------------------- factory
def build_llm(cfg: Any) -> LLM:
    """The configured backend. `cfg` is agent.config.Config."""
    from agent.models import ensure_gguf
    from trainer.adapters import live_path

    c = cfg.llm
    if c.backend == "openai":
        key = os.environ.get(c.openai.api_key_env) if c.openai.api_key_env else None
        return OpenAICompatLLM(
            c.openai.base_url, c.openai.model, key, c.openai.timeout_s, c.openai.structured, c.n_ctx
        )
    path = cfg.path(c.model_path) if c.model_path else ensure_gguf(cfg.data_path)
    return LlamaCppLLM(path, c.n_ctx, c.n_threads, c.seed, adapter_file=live_path(cfg.data_path), adapter_mode=c.adapter)
