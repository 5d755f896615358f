"""Judges (docs/judges.md): models fine-tuned from the masked-diffusion LM that tell how much of a text
a model wrote (a sequence scorer) and which tokens (a token classifier, the "inspector").

    synthetic.py    their training data: real text partly rewritten by the LM (`assay data produce`)
    tasks.py        their training objectives (token_classification, sequence_scoring: `TASKS`)
    baseline.py     the likelihood baseline they are measured against
    features.py     judges fed the LM's per-token log-probabilities ([features]; `JudgeConfig`)
    pairs.py        ranking held-out (real passage, rewrite) pairs (`assay score --pairs`)
    calibration.py  the sequence scorer's calibration plot
    judge.py        `Judge`: load trained judges and score texts (`assay score`, `assay.Judge`)
    render.py       reading texts and printing scores in the terminal

The public API other features use: `Judge`.
"""

from assay.judges.judge import Judge

__all__ = ["Judge"]
