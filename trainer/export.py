"""Export a peft LoRA as a llama.cpp GGUF LoRA adapter.

Layout (as llama.cpp's convert_lora_to_gguf.py writes it): ``general.type =
adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``; for every adapted
linear layer two tensors ``<gguf name>.weight.lora_a`` (numpy shape
[r, n_in], i.e. peft's lora_A) and ``.weight.lora_b`` ([n_out, r], peft's
lora_B). The GGUF writer stores numpy shapes reversed (ggml order), which is
what llama.cpp expects; tests compare llama.cpp's output with the adapter to
the merged peft model's.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from trainer.errors import TrainerError

_KEY = re.compile(r"(?:.*?)(model\.layers\.\d+\.(?:self_attn|mlp)\.\w+)\.lora_([AB])(?:\.\w+)?\.weight$")


def lora_tensors(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{hf module name: {"A": tensor, "B": tensor}} from a peft adapter state dict."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in state.items():
        m = _KEY.match(k)
        if not m:
            if "lora_" in k:
                raise TrainerError(f"cannot export LoRA tensor {k!r}: only attention/MLP projections are supported")
            continue
        out.setdefault(m.group(1), {})[m.group(2)] = v
    return out


def export_gguf(adapter_dir: Path, out_path: Path, arch: str = "gemma3", num_layers: int | None = None) -> Path:
    """Write ``out_path`` from a saved peft adapter folder (adapter_config.json + safetensors)."""
    import json

    import numpy as np
    from gguf import GGUFWriter, MODEL_ARCH_NAMES, get_tensor_name_map
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    conf = json.loads((adapter_dir / "adapter_config.json").read_text())
    state = load_file(str(adapter_dir / "adapter_model.safetensors"))
    pairs = lora_tensors(state)
    if not pairs:
        raise TrainerError(f"no LoRA tensors in {adapter_dir}")
    arch_enum = {v: k for k, v in MODEL_ARCH_NAMES.items()}.get(arch)
    if arch_enum is None:
        raise TrainerError(f"unknown GGUF architecture {arch!r}")
    if num_layers is None:
        num_layers = 1 + max(int(re.search(r"layers\.(\d+)\.", k).group(1)) for k in pairs)  # type: ignore[union-attr]
    names = get_tensor_name_map(arch_enum, num_layers)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    w = GGUFWriter(str(tmp), arch)
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(conf.get("lora_alpha", conf.get("r", 8))))
    w.add_string("general.name", adapter_dir.name)
    for hf_name in sorted(pairs, key=_layer_order):
        ab = pairs[hf_name]
        if set(ab) != {"A", "B"}:
            raise TrainerError(f"LoRA for {hf_name} lacks lora_A or lora_B")
        gname = names.get_name(hf_name)
        if gname is None:
            raise TrainerError(f"no GGUF tensor name for {hf_name}")
        a = ab["A"].float().cpu().numpy().astype(np.float32)  # [r, n_in]
        b = ab["B"].float().cpu().numpy().astype(np.float32)  # [n_out, r]
        w.add_tensor(f"{gname}.weight.lora_a", a)
        w.add_tensor(f"{gname}.weight.lora_b", b)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(out_path)
    return out_path


def _layer_order(name: str) -> tuple[int, str]:
    m = re.search(r"layers\.(\d+)\.", name)
    return (int(m.group(1)) if m else -1, name)
