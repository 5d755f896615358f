"""assay: small text models (one transformer, three heads) and the LLM data tools around them."""

__version__ = "0.1.0"
