"""Test doubles for the stores layer: a fast, deterministic embedder (no model files)."""
from __future__ import annotations

import hashlib
import math
import re


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
