"""Masking: pure strategy functions, their configs and the stage curriculum."""

from assay.masking.config import BertStage, MaskingConfig, RandomStage, SpanStage, Stage, StickyStage
from assay.masking.curriculum import Curriculum
from assay.masking.strategies import (
    STRATEGIES,
    Masked,
    MaskVocab,
    apply_stage,
    mask_bert,
    mask_random,
    mask_span,
    mask_sticky,
)

__all__ = [
    "STRATEGIES",
    "BertStage",
    "Curriculum",
    "MaskingConfig",
    "Masked",
    "RandomStage",
    "SpanStage",
    "Stage",
    "StickyStage",
    "MaskVocab",
    "apply_stage",
    "mask_bert",
    "mask_random",
    "mask_span",
    "mask_sticky",
]
