"""The transformer and its config."""

from assay.model.config import ModelConfig
from assay.model.transformer import IGNORE_INDEX, Transformer, class_weights_from_counts

__all__ = ["IGNORE_INDEX", "ModelConfig", "Transformer", "class_weights_from_counts"]
