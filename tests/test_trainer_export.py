"""Exporting a peft LoRA as a llama.cpp GGUF adapter, and loading it in llama-cpp-python."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _real_dims(gguf_path: Path) -> dict[str, int]:
    from gguf import GGUFReader

    r = GGUFReader(str(gguf_path))

    def val(key: str) -> int:
        f = r.fields[key]
        return int(f.parts[f.data[0]][0])

    return {
        "layers": val("gemma3.block_count"), "hidden": val("gemma3.embedding_length"), "ffn": val("gemma3.feed_forward_length"),
        "heads": val("gemma3.attention.head_count"), "kv": val("gemma3.attention.head_count_kv"), "head_dim": val("gemma3.attention.key_length"),
    }


def _random_adapter(out: Path, d: dict[str, int], r: int = 8, std: float = 0.02) -> Path:
    """A peft-format adapter folder with random A and B for every projection of the real model."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    h, q, kv, f = d["hidden"], d["heads"] * d["head_dim"], d["kv"] * d["head_dim"], d["ffn"]
    shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h), "gate_proj": (h, f), "up_proj": (h, f), "down_proj": (f, h)}
    state = {}
    for i in range(d["layers"]):
        for m, (n_in, n_out) in shapes.items():
            part = "self_attn" if m in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            key = f"base_model.model.model.layers.{i}.{part}.{m}"
            state[f"{key}.lora_A.weight"] = torch.randn(r, n_in, generator=g) * std * 3
            state[f"{key}.lora_B.weight"] = torch.randn(n_out, r, generator=g) * std
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps({"r": r, "lora_alpha": 16, "target_modules": list(MODULES), "peft_type": "LORA"}))
    return out


def test_export_names_shapes_and_metadata(tmp_path):
    from gguf import GGUFReader

    from trainer.export import export_gguf
    from trainer.testing import cached_test_models

    d = _real_dims(cached_test_models()["gguf"])
    adir = _random_adapter(tmp_path / "ad", d)
    out = export_gguf(adir, tmp_path / "ad" / "adapter.gguf", num_layers=d["layers"])
    r = GGUFReader(str(out))
    fields = {k: r.fields[k] for k in ("general.architecture", "general.type", "adapter.type", "adapter.lora.alpha")}
    assert bytes(fields["general.type"].parts[-1]).decode() == "adapter"
    assert bytes(fields["adapter.type"].parts[-1]).decode() == "lora"
    assert bytes(fields["general.architecture"].parts[-1]).decode() == "gemma3"
    assert float(fields["adapter.lora.alpha"].parts[-1][0]) == 16.0
    t = {x.name: x for x in r.tensors}
    assert len(t) == 2 * 7 * d["layers"]
    # ggml order (reversed numpy): lora_a is [n_in, r], lora_b is [r, n_out]
    assert list(t["blk.0.attn_q.weight.lora_a"].shape) == [d["hidden"], 8]
    assert list(t["blk.0.attn_q.weight.lora_b"].shape) == [8, d["heads"] * d["head_dim"]]
    assert list(t["blk.3.ffn_down.weight.lora_a"].shape) == [d["ffn"], 8]


def test_exported_adapter_loads_in_llama_cpp_and_changes_output(tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp")
    import numpy as np

    from trainer.export import export_gguf
    from trainer.testing import cached_test_models

    gguf = cached_test_models()["gguf"]
    d = _real_dims(gguf)
    out = export_gguf(_random_adapter(tmp_path / "ad", d), tmp_path / "ad" / "adapter.gguf", num_layers=d["layers"])
    prompt = "Question: What is the capital of France?\nAnswer:"

    def run(**kw):
        llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=128, n_threads=2, verbose=False, logits_all=True, **kw)
        toks = llm.tokenize(prompt.encode(), add_bos=True)
        llm.eval(toks)
        logits = np.array(llm.scores[llm.n_tokens - 1])
        text = llm(prompt, max_tokens=6, temperature=0.0)["choices"][0]["text"]
        llm.close()
        return logits, text

    base_logits, base_text = run()
    lora_logits, lora_text = run(lora_path=str(out))
    assert np.abs(base_logits - lora_logits).max() > 1.0
    assert lora_text != base_text


@pytest.mark.integration
def test_llama_cpp_adapter_matches_merged_peft_model(tmp_path):
    """On the real bundled model: llama.cpp + exported adapter ≈ transformers + peft (same next-token law)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    import numpy as np
    from peft import LoraConfig, get_peft_model

    from trainer import lm
    from trainer.config import TrainerConfig
    from trainer.export import export_gguf
    from trainer.testing import cached_test_models

    paths = cached_test_models()
    hf = lm.ensure_hf_checkpoint(paths["root"], lambda: paths["gguf"])  # converted once into the test cache
    model, tok, _ = lm.load_base(TrainerConfig(base_model_dir=str(hf)), paths["root"])
    torch.manual_seed(0)
    pm = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(MODULES), init_lora_weights=False))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.mul_(0.3)
    pm.save_pretrained(tmp_path / "ad")
    out = export_gguf(tmp_path / "ad", tmp_path / "ad" / "adapter.gguf")
    prompt = "Question: What is the capital of France?\nAnswer:"
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        hf_lora = pm(ids).logits[0, -1]
        with pm.disable_adapter():
            hf_base = pm(ids).logits[0, -1]

    def cpp(**kw):
        llm = llama_cpp.Llama(model_path=str(paths["gguf"]), n_ctx=128, n_threads=2, verbose=False, logits_all=True, **kw)
        toks = llm.tokenize(prompt.encode(), add_bos=True)
        assert toks == ids[0].tolist()
        llm.eval(toks)
        out_ = torch.tensor(np.array(llm.scores[llm.n_tokens - 1]))
        llm.close()
        return out_

    c_base, c_lora = cpp(), cpp(lora_path=str(out))

    def kl(p, q):
        lp, lq = torch.log_softmax(p.float(), -1), torch.log_softmax(q.float(), -1)
        return float((lp.exp() * (lp - lq)).sum())

    assert kl(hf_base, hf_lora) > 0.5  # the adapter matters ...
    assert kl(hf_lora, c_lora) < 0.05  # ... and llama.cpp applies it as peft does (Q4 noise only)
    assert int(hf_lora.argmax()) == int(c_lora.argmax())
    delta = torch.corrcoef(torch.stack([hf_lora - hf_base, c_lora - c_base]))[0, 1]
    assert delta > 0.95
