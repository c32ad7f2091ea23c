"""LLM backends: in-process llama.cpp (default), an OpenAI-compatible server, and a fake.

All backends share one small interface (`LLM`):

* `complete(prompt, schema=..., ...)` – greedy (temperature 0) completion; with a
  JSON schema the decoding is constrained (llama.cpp grammar, or the server's
  structured-output field) so the small model cannot produce invalid JSON;
* `score_choices(prompt, choices)` – mean log-likelihood of each continuation,
  which is how a 270M model answers multiple choice better than by generating;
* `stream(prompt)` – tokens as they are produced (chat);
* `count_tokens(text)`.

Every call is metered (`Meter`) and every completion is returned as a
`Completion` carrying its prompt, output and token counts so callers can log it.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.errors import BackendError, ModelOutputError


@dataclass
class Completion:
    text: str
    prompt: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    model: str
    step: str = ""
    truncated: bool = False  # generation stopped at max_tokens


@dataclass
class Meter:
    """Totals of model use; `by_step` splits them by the caller's step name."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    by_step: dict[str, dict[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, step: str, prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.seconds += seconds
            s = self.by_step.setdefault(step or "other", {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0})
            s["calls"] += 1
            s["prompt_tokens"] += prompt_tokens
            s["completion_tokens"] += completion_tokens
            s["seconds"] += seconds

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "seconds": round(self.seconds, 3),
                "by_step": {k: dict(v) for k, v in self.by_step.items()},
            }


class LLM(Protocol):
    name: str
    n_ctx: int
    meter: Meter

    def complete(
        self, prompt: str, *, max_tokens: int = 256, schema: dict | None = None,
        stop: list[str] | None = None, step: str = "",
    ) -> Completion: ...

    def score_choices(self, prompt: str, choices: list[str], step: str = "") -> list[float]: ...

    def stream(self, prompt: str, *, max_tokens: int = 256, stop: list[str] | None = None) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...


def complete_json(llm: LLM, prompt: str, schema: dict, *, step: str, max_tokens: int = 384) -> tuple[Any, Completion]:
    """Constrained completion parsed as JSON. Raises ModelOutputError (with the raw text) if invalid."""
    c = llm.complete(prompt, schema=schema, max_tokens=max_tokens, step=step)
    try:
        # strict=False: a raw tab or newline inside a string (a server whose grammar allows
        # it) is kept as text rather than failing the document; callers normalise spaces
        return json.loads(c.text, strict=False), c
    except json.JSONDecodeError as e:
        if c.truncated:  # ran out of tokens mid-JSON: keep the complete part, if any
            salvaged = close_truncated_json(c.text)
            if salvaged is not None:
                return salvaged, c
        err = ModelOutputError(f"{step}: model output is not valid JSON ({e.msg})", raw=c.text, step=step)
        err.completion = c  # type: ignore[attr-defined]
        raise err from None


def close_truncated_json(text: str) -> Any | None:
    """Parse JSON cut off by a token limit: drop the incomplete tail back to the last
    complete value and close the open brackets. None if nothing complete remains."""
    stack: list[str] = []
    cuts: list[tuple[int, list[str]]] = []  # (end of a complete value, brackets open there)
    in_str = esc = False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
                if stack and stack[-1] == "[":
                    cuts.append((i + 1, list(stack)))
            continue
        if ch == '"':
            in_str = True
        elif ch == "," and stack and stack[-1] == "[":
            cuts.append((i, list(stack)))  # e.g. after a number in an array
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}":
            if not stack:
                return None
            stack.pop()
            cuts.append((i + 1, list(stack)))
    for end, open_ in reversed(cuts):
        candidate = text[:end] + "".join("]" if b == "[" else "}" for b in reversed(open_))
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    return None


# ---------------------------------------------------------------------------- llama.cpp
class LlamaCppLLM:
    """In-process llama.cpp. Not thread-safe by itself, so every call takes a lock.

    If `adapter_file` (a JSON pointer written by the trainer, see trainer/adapters.py)
    changes, the model is reloaded with the new LoRA before the next call: the
    nightly adapter goes live without restarting the daemon.
    """

    def __init__(
        self, model_path: str | Path, n_ctx: int = 2048, n_threads: int | None = None,
        seed: int = 0, adapter_file: str | Path | None = None,
    ):
        self.model_path = str(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.seed = seed
        self.adapter_file = Path(adapter_file) if adapter_file else None
        self.adapter: dict[str, Any] | None = None
        self._adapter_mtime: float | None = None
        self.name = Path(self.model_path).name
        self.meter = Meter()
        self._lock = threading.RLock()
        self._grammars: dict[str, Any] = {}
        self._llm = self._load(None)
        self._check_adapter()

    def _load(self, lora_path: str | None, lora_scale: float = 1.0) -> Any:
        from llama_cpp import Llama  # imported here: `knowd facts` etc. need no model

        kw: dict[str, Any] = dict(
            model_path=self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads,
            seed=self.seed, verbose=False,
        )
        if lora_path:
            kw.update(lora_path=lora_path, lora_scale=lora_scale)
        try:
            return Llama(**kw)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"could not load model {self.model_path}: {e}") from None

    def _check_adapter(self) -> None:
        """Hot-load (or unload) the live LoRA adapter when its pointer file changes."""
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
        self._llm = self._load(want, float(live.get("scale", 1.0)) if live else 1.0)
        self.adapter = live if want else None

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
            raise BackendError(f"prompt of {n} tokens does not fit the {self.n_ctx}-token context")
        return min(max_tokens, room)

    def complete(
        self, prompt: str, *, max_tokens: int = 256, schema: dict | None = None,
        stop: list[str] | None = None, step: str = "",
    ) -> Completion:
        with self._lock:
            self._check_adapter()
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

    def stream(self, prompt: str, *, max_tokens: int = 256, stop: list[str] | None = None) -> Iterator[str]:
        with self._lock:
            self._check_adapter()
            max_tokens = self._fit(prompt, max_tokens)
            t0 = time.perf_counter()
            n = 0
            for part in self._llm.create_completion(
                prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, stop=stop or [], stream=True
            ):
                n += 1
                yield part["choices"][0]["text"]
            self.meter.add("stream", self.count_tokens(prompt), n, time.perf_counter() - t0)

    def score_choices(self, prompt: str, choices: list[str], step: str = "choices") -> list[float]:
        """Mean log-probability per token of each choice as a continuation of `prompt`.

        The shared prompt is evaluated once; each choice then re-uses its KV cache
        (rewinding `n_tokens`), so scoring k short choices costs about one prompt.
        """
        import numpy as np

        with self._lock:
            self._check_adapter()
            t0 = time.perf_counter()
            llm = self._llm
            p_toks = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
            seqs = [llm.tokenize((prompt + c).encode("utf-8"), add_bos=True, special=False) for c in choices]
            # the choices may re-tokenise the prompt's last token; share only the common prefix
            common = min([len(p_toks)] + [_common_prefix(p_toks, s) for s in seqs])
            common = max(1, min(common, min(len(s) for s in seqs) - 1))
            if max(len(s) for s in seqs) >= self.n_ctx:
                raise BackendError("prompt and choices do not fit the context")
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
            raise BackendError(f"LLM server {self.base_url}: HTTP {r.status_code}: {r.text[:200]}")
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
        stop: list[str] | None = None, step: str = "",
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

    def stream(self, prompt: str, *, max_tokens: int = 256, stop: list[str] | None = None) -> Iterator[str]:
        c = self.complete(prompt, max_tokens=max_tokens, stop=stop, step="stream")
        yield c.text

    def score_choices(self, prompt: str, choices: list[str], step: str = "choices") -> list[float]:
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
                raise BackendError("LLM server does not return prompt logprobs (echo); choice scoring needs them")
            scores.append(sum(vals) / len(vals))
        self.meter.add(step, 0, 0, time.perf_counter() - t0)
        return scores


# ---------------------------------------------------------------------------- fake (tests, benchmarks)
@dataclass
class FakeCall:
    prompt: str
    schema: dict | None
    step: str
    max_tokens: int


class FakeLLM:
    """A scripted LLM for tests: answers from a queue (or a responder function) and
    records every call, so tests can assert on what reached the model.

    Queue items may be strings or JSON-able objects (dumped to JSON), or exceptions
    (raised, to simulate a failing backend).
    """

    def __init__(
        self, answers: list[Any] | None = None,
        responder: Callable[[str, dict | None, str], Any] | None = None,
        choice_scorer: Callable[[str, list[str]], list[float]] | None = None,
        n_ctx: int = 2048,
    ):
        self.answers = list(answers or [])
        self.responder = responder
        self.choice_scorer = choice_scorer
        self.calls: list[FakeCall] = []
        self.name = "fake"
        self.n_ctx = n_ctx
        self.meter = Meter()

    def count_tokens(self, text: str) -> int:
        return max(1, len(text.split()))

    def queue(self, *answers: Any) -> None:
        self.answers.extend(answers)

    def complete(
        self, prompt: str, *, max_tokens: int = 256, schema: dict | None = None,
        stop: list[str] | None = None, step: str = "",
    ) -> Completion:
        self.calls.append(FakeCall(prompt, schema, step, max_tokens))
        if self.answers:
            ans = self.answers.pop(0)
        elif self.responder is not None:
            ans = self.responder(prompt, schema, step)
        else:
            raise AssertionError(f"FakeLLM: no answer queued for step {step!r}")
        if isinstance(ans, BaseException):
            raise ans
        truncated = isinstance(ans, FakeLLM.Truncated)
        if truncated:
            ans = ans.text
        text = ans if isinstance(ans, str) else json.dumps(ans)
        pt, ct = self.count_tokens(prompt), self.count_tokens(text)
        self.meter.add(step, pt, ct, 0.0)
        return Completion(text, prompt, pt, ct, 0.0, self.name, step, truncated)

    @dataclass
    class Truncated:
        """Queue this to simulate output cut off at max_tokens."""

        text: str

    def stream(self, prompt: str, *, max_tokens: int = 256, stop: list[str] | None = None) -> Iterator[str]:
        c = self.complete(prompt, max_tokens=max_tokens, stop=stop, step="stream")
        for word in c.text.split(" "):
            yield word + " "

    def score_choices(self, prompt: str, choices: list[str], step: str = "choices") -> list[float]:
        self.calls.append(FakeCall(prompt, {"choices": choices}, step, 0))
        if self.choice_scorer is None:
            raise AssertionError("FakeLLM: no choice_scorer given")
        return self.choice_scorer(prompt, choices)


# ---------------------------------------------------------------------------- factory
def build_llm(cfg: Any) -> LLM:
    """The configured backend. `cfg` is agent.config.Config."""
    from agent.models import ensure_gguf

    c = cfg.llm
    if c.backend == "openai":
        key = os.environ.get(c.openai.api_key_env) if c.openai.api_key_env else None
        return OpenAICompatLLM(
            c.openai.base_url, c.openai.model, key, c.openai.timeout_s, c.openai.structured, c.n_ctx
        )
    path = cfg.path(c.model_path) if c.model_path else ensure_gguf(cfg.data_path)
    return LlamaCppLLM(path, c.n_ctx, c.n_threads, c.seed, adapter_file=cfg.data_path / "adapters" / "live.json")
