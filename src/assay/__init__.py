"""assay: small text models (one transformer, three heads) and the LLM data tools around them."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `from assay import Judge` without importing torch at `import assay`
    if name == "Judge":
        from assay.scorers.judge import Judge

        return Judge
    raise AttributeError(f"module 'assay' has no attribute {name!r}")
