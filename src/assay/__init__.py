"""assay: small text models (one transformer, three heads) and the LLM data tools around them."""

from assay.version import __version__

__all__ = ["Judge", "__version__"]


def __getattr__(name: str):
    # `from assay import Judge` without importing torch at `import assay`
    if name == "Judge":
        from assay.judges.judge import Judge

        return Judge
    raise AttributeError(f"module 'assay' has no attribute {name!r}")
