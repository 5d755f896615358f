"""User-facing errors.

Library code raises `AssayError` (or a subclass) for anything the user can fix: a bad config key,
a missing file, a corrupt checkpoint. The CLI prints such errors as one line starting with
`error:` and exits non-zero; anything else is a bug and keeps its traceback.
"""


class AssayError(Exception):
    """An error caused by user input; its message is a complete, single-line explanation.

    permanent: the same input fails the same way every time (a request an endpoint rejects, an
    unknown model, a bad key), so a pipeline stops after a few in a row instead of failing every row;
    fix: what the user should change, in one sentence (or None)."""

    permanent: bool = False
    fix: str | None = None


class ConfigError(AssayError):
    """A config file or `--set` override is malformed, unknown or out of range."""


class DataError(AssayError):
    """A corpus or data file is missing, empty or malformed."""


class CheckpointError(AssayError):
    """A checkpoint directory is missing, incomplete or corrupt."""
