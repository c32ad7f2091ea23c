"""The base model for consolidation: files on disk, loading, and text generation.

* The base GGUF is passed in (``consolidate(..., base_gguf=)``, a function called
  only when a run needs the file): knowd assembles the bundled model into
  ``data_dir/models/`` (agent/models.py); the trainer never assembles or downloads
  model files itself.
* transformers dequantises that GGUF to float32; the result is saved once as a
  normal checkpoint in ``data_dir/models/hf-<name>/`` so later runs load it in
  seconds.
* Generation goes through a small `Generator` protocol with two engines:
  llama.cpp (fast on CPU; evaluates the *exported* GGUF adapter, i.e. exactly
  what ships) and transformers (CUDA, and tiny test models). Tests use a fake.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from trainer.errors import TrainerError

log = logging.getLogger(__name__)

# --- files -------------------------------------------------------------------


def models_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / "models"


#: Gives the base model's GGUF path; called only when a run needs the file.
GGUFSource = Callable[[], "str | os.PathLike"]


def base_gguf(source: GGUFSource | None) -> Path:
    """The base model's GGUF, from the function the caller passed in."""
    if source is None:
        raise TrainerError(
            "this run needs the base model's GGUF and none was given "
            "(`knowd consolidate` passes the bundled one; `python -m trainer consolidate` takes --base-gguf PATH)"
        )
    path = Path(source())
    if not path.is_file():
        raise TrainerError(f"base model GGUF not found: {path}")
    return path


def ensure_hf_checkpoint(data_dir: str | os.PathLike, gguf: GGUFSource | None, name: str = "gemma3-270m") -> Path:
    """A transformers checkpoint of the base model, converted from its GGUF once, then cached
    under data_dir/models/ (`gguf` is asked for the file only for that first conversion)."""
    out = models_dir(data_dir) / f"hf-{name}"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = base_gguf(gguf)
    log.info("converting %s to a transformers checkpoint (once)", gguf)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # Saved as a plain float32 checkpoint: the GGUF quantizer must not follow it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


# --- device and loading ------------------------------------------------------


def pick_device(cfg: Any) -> tuple[Any, Any]:
    """(torch.device, dtype) from the config: cuda if available and allowed, else cpu."""
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TrainerError("consolidation.device is 'cuda' but no CUDA device is available")
    dev = torch.device("cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    if cfg.dtype == "auto":
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    else:
        dtype = getattr(torch, cfg.dtype)
    if dev.type == "cpu":
        torch.set_num_threads(cpu_threads(cfg.threads))
    return dev, dtype


def cpu_threads(configured: int = 0) -> int:
    """Threads for CPU work: as configured, else all cores but one (at least 1)."""
    return configured if configured > 0 else max(1, (os.cpu_count() or 2) - 1)


def load_base(cfg: Any, data_dir: str | os.PathLike, gguf: GGUFSource | None = None) -> tuple[Any, Any, Path]:
    """(model, tokenizer, checkpoint dir) of the frozen base model, in eval mode (`gguf`:
    the base GGUF, for the first conversion when `cfg.base_model_dir` is not set)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(cfg.base_model_dir) if cfg.base_model_dir else ensure_hf_checkpoint(data_dir, gguf, cfg.model_name)
    dev, dtype = pick_device(cfg)
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(dev)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    return model, tok, path


def attach_lora(model: Any, cfg: Any, resume_dir: Path | None = None) -> Any:
    """Wrap the base in a trainable peft LoRA: fresh, or continuing a stored adapter."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if resume_dir is not None:
        pm = PeftModel.from_pretrained(model, resume_dir, is_trainable=True)
    else:
        lc = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.target_modules),
            layers_to_transform=list(cfg.lora_layers) or None,
            bias="none",
            task_type="CAUSAL_LM",
        )
        pm = get_peft_model(model, lc)
    # LoRA weights train in float32 even when the base runs in bfloat16.
    for n, p in pm.named_parameters():
        if "lora_" in n:
            p.data = p.data.float()
            p.requires_grad_(True)
        else:
            p.requires_grad_(False)
    pm.eval()
    return pm


# --- generation ----------------------------------------------------------------


class Generator(Protocol):
    """Greedy text continuation for a batch of prompts.

    ``which``: "base" = the base model (adapter off), "adapter" = base + the
    adapter under evaluation. Returned texts exclude the prompt and are cut
    before the first stop string.
    """

    def generate(self, prompts: Sequence[str], max_new_tokens: int, *, which: str = "base", stop: Sequence[str] = ("\n",)) -> list[str]: ...


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if 0 <= i < cut:
            cut = i
    return text[:cut]


class HFGenerator:
    """transformers generation on the peft model (adapter toggled with disable_adapter)."""

    def __init__(self, model: Any, tok: Any, device: Any, batch_size: int = 16, progress: Any = None):
        self.model, self.tok, self.device, self.batch_size, self.progress = model, tok, device, batch_size, progress

    @contextlib.contextmanager
    def _mode(self, which: str) -> Iterator[None]:
        if which == "base" and hasattr(self.model, "disable_adapter"):
            with self.model.disable_adapter():
                yield
        else:
            yield

    def generate(self, prompts: Sequence[str], max_new_tokens: int, *, which: str = "base", stop: Sequence[str] = ("\n",)) -> list[str]:
        import torch

        out: list[str] = [""] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        with self._mode(which), torch.no_grad():
            for b in range(0, len(order), self.batch_size):
                idx = order[b : b + self.batch_size]
                enc = self.tok([prompts[i] for i in idx], return_tensors="pt", padding=True).to(self.device)
                gen = self.model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tok.pad_token_id,
                    stop_strings=list(stop) or None,
                    tokenizer=self.tok,
                )
                for row, i in enumerate(idx):
                    text = self.tok.decode(gen[row, enc["input_ids"].shape[1] :], skip_special_tokens=True)
                    out[i] = cut_at_stop(text, stop)
                if self.progress:
                    self.progress(len(idx))
        return out


class LlamaCppGenerator:
    """llama.cpp generation on the bundled GGUF, optionally with a GGUF LoRA adapter."""

    def __init__(self, base_gguf: Path, n_ctx: int = 1024, threads: int = 0, progress: Any = None, seed: int = 0):
        self.base_gguf, self.n_ctx, self.progress, self.seed = Path(base_gguf), n_ctx, progress, seed
        self.threads = cpu_threads(threads)
        self._models: dict[str, Any] = {}
        self.adapter_gguf: Path | None = None
        self.adapter_scale = 1.0

    def set_adapter(self, path: Path | None, scale: float = 1.0) -> None:
        self.adapter_gguf, self.adapter_scale = (Path(path) if path else None), scale
        self._models.pop("adapter", None)

    def _llama(self, which: str) -> Any:
        if which not in self._models:
            from llama_cpp import Llama

            kw: dict[str, Any] = {}
            if which == "adapter":
                if self.adapter_gguf is None:
                    raise TrainerError("no adapter set on the llama.cpp generator")
                kw = {"lora_path": str(self.adapter_gguf), "lora_scale": self.adapter_scale}
            self._models[which] = Llama(
                model_path=str(self.base_gguf), n_ctx=self.n_ctx, n_threads=self.threads, n_threads_batch=self.threads,
                verbose=False, seed=self.seed, **kw
            )
        return self._models[which]

    def generate(self, prompts: Sequence[str], max_new_tokens: int, *, which: str = "base", stop: Sequence[str] = ("\n",)) -> list[str]:
        llm = self._llama(which)
        out = []
        for p in prompts:
            r = llm(p, max_tokens=max_new_tokens, temperature=0.0, stop=list(stop) or None)
            out.append(cut_at_stop(r["choices"][0]["text"], stop))
            if self.progress:
                self.progress(1)
        return out

    def close(self) -> None:
        for m in self._models.values():
            with contextlib.suppress(Exception):
                m.close()
        self._models.clear()
