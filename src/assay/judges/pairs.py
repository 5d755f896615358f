"""Does the judge rank a real passage below its rewrite? Pairs from a stream's held-out split.

Each validation sample of a synthetic stream is a real passage (`original`) and the same passage
with part of it rewritten by the LM (`idx`, with the realised fraction `score`). A judge ranks a
pair the right way when it gives the rewrite the higher score. Pairs whose rewrite equals the
original (the LM put every masked token back) cannot be ranked and are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from assay.data.stream import load_val
from assay.data.tokenizer import load_tokenizer
from assay.errors import DataError


def rank_pairs(judge, stream: str | Path, k: int = 50, min_rewritten: float = 0.2, seed: int = 0) -> dict[str, Any]:
    """Score `k` (original, rewrite) pairs drawn at random (fixed seed) from the stream's validation
    split; the share ranked right, overall and for pairs with at least `min_rewritten` rewritten."""
    stream = Path(stream)
    val = load_val(stream)
    if "original" not in val:
        raise DataError(f"{stream} is not a synthetic stream (no original passages)")
    tok = load_tokenizer(stream / "tokenizer")
    if tok.fingerprint() != judge.tokenizer.fingerprint():
        raise DataError(f"{stream} uses another tokenizer than the judge")
    changed = (val["score"] > 0).nonzero().squeeze(1)
    if not len(changed):
        raise DataError(f"{stream} has no validation pair with a rewritten token")
    order = changed[torch.randperm(len(changed), generator=torch.Generator().manual_seed(seed))][:k]
    rows = order.sort().values.tolist()
    originals = [tok.decode(val["original"][i].tolist()) for i in rows]
    rewrites = [tok.decode(val["idx"][i].tolist()) for i in rows]
    scored = judge.score(originals + rewrites)
    pairs = []
    for j, i in enumerate(rows):
        real, fake = scored[j], scored[len(rows) + j]
        pairs.append(
            {
                "index": i,
                "rewritten": round(float(val["score"][i]), 4),
                "score_original": real["score"],
                "score_rewrite": fake["score"],
                "right": fake["score"] > real["score"],
                "original": real,
                "rewrite": fake,
            }
        )
    big = [p for p in pairs if p["rewritten"] >= min_rewritten]
    return {
        "stream": str(stream),
        "pairs": len(pairs),
        "share_right": sum(p["right"] for p in pairs) / len(pairs),
        "min_rewritten": min_rewritten,
        "pairs_at_least": len(big),
        "share_right_at_least": sum(p["right"] for p in big) / len(big) if big else float("nan"),
        "details": pairs,
    }
