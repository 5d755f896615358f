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
    recipe.py       `assay judge train`: corpus -> LM -> rewrites -> scorer and inspector, in one call
    rewriters.py    the recipe's rewriters (`rewrite.kind`): settings, the lm rewriter, a stream writer
    rewrite_llm.py  the llm rewriter: an LLM rewrites spans of real passages
    rewrite_jsonl.py  the jsonl rewriter: the user's own labelled texts

The public API other features use: `Judge`.
"""

from assay.judges.judge import Judge

__all__ = ["Judge"]
