"""The version of assay (one definition: the package, run_config.json files and traces carry it)."""

__version__ = "0.1.0"
