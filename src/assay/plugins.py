"""User code named on the command line as `path/to/file.py:function` (custom scorers, custom answer
checkers): the file is imported once and the function's signature checked up front, so a mistake is
a one-line error before any work starts."""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assay.errors import AssayError


def load_function(
    spec: str, kind: str, sample_args: tuple[Any, ...], signature: str, error: type[AssayError]
) -> Callable[..., Any]:
    """The function named by `spec`. `kind` ("scorer", "checker") words the errors; the function must
    accept `sample_args` positionally (`signature` is what the error shows); failures raise `error`."""
    path_text, sep, func_name = spec.rpartition(":")
    if not sep or not path_text.endswith(".py") or not func_name:
        raise error(f"custom {kind} {spec!r} must look like path/to/file.py:function")
    path = Path(path_text)
    if not path.is_file():
        raise error(f"custom {kind} file {path} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"assay_custom_{kind}_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise error(f"custom {kind} {path} failed to import: {type(exc).__name__}: {exc}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise error(f"custom {kind} {path} has no function {func_name!r}")
    try:
        inspect.signature(func).bind(*sample_args)
    except TypeError:
        raise error(f"custom {kind} {spec}: signature must be {signature}") from None
    return func
