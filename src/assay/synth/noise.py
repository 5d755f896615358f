"""Deterministic typo noise for vibes: the model that learns from the data should cope with the
misspelt, hurried text people actually type.

Whether a row is noisy, and which typos it gets, depend only on (seed, row id): re-running or
resuming the pipeline gives the same noise, and adding rows does not change other rows' noise.
"""

from __future__ import annotations

import random

from assay.rng import stable_rng

# Neighbours on a QWERTY keyboard, for substitution typos.
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS: dict[str, str] = {}
for r, row in enumerate(_ROWS):
    for c, ch in enumerate(row):
        near = [row[i] for i in (c - 1, c + 1) if 0 <= i < len(row)]
        for rr in (r - 1, r + 1):
            if 0 <= rr < len(_ROWS):
                near += [_ROWS[rr][i] for i in (c - 1, c, c + 1) if 0 <= i < len(_ROWS[rr])]
        _NEIGHBOURS[ch] = "".join(near)


def is_noisy(seed: int, row_id: str, rate: float) -> bool:
    """True for about `rate` of the rows, decided by (seed, row_id) alone."""
    return stable_rng(seed, row_id, "noisy?").random() < rate


def add_typos(text: str, rng: random.Random, char_rate: float = 0.05) -> str:
    """Character-level typos (drop, swap with the next letter, double, hit a neighbouring key) at
    about `char_rate` per letter; at least one typo in any text with a letter."""
    chars = list(text)
    letters = [i for i, ch in enumerate(chars) if ch.isalpha()]
    if not letters:
        return text
    picks = {i for i in letters if rng.random() < char_rate} or {rng.choice(letters)}
    out: list[str] = []
    i = 0
    while i < len(chars):
        ch = chars[i]
        if i not in picks:
            out.append(ch)
            i += 1
            continue
        op = rng.choice(("drop", "swap", "double", "neighbour"))
        if op == "drop":
            pass
        elif op == "swap" and i + 1 < len(chars):
            out += [chars[i + 1], ch]
            i += 1
        elif op == "double":
            out += [ch, ch]
        else:
            near = _NEIGHBOURS.get(ch.lower())
            sub = rng.choice(near) if near else ch
            out.append(sub.upper() if ch.isupper() else sub)
        i += 1
    noisy = "".join(out)
    return noisy if noisy != text else text[:-1] if len(text) > 1 else text + text


def noisy_copy(seed: int, row_id: str, rate: float, vibe: str, tags: list[str]) -> tuple[str, list[str]]:
    """(vibe_noisy, tags_noisy): typo'd copies for the chosen ~`rate` of rows, unchanged otherwise."""
    if not is_noisy(seed, row_id, rate):
        return vibe, list(tags)
    rng = stable_rng(seed, row_id, "typos")
    return add_typos(vibe, rng), [add_typos(t, rng) if rng.random() < 0.5 else t for t in tags]
