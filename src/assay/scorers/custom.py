"""Custom scorers: `path/to/file.py:function` with `function(vibe: str, config: dict) -> dict`
returning at least `{"final_score": float}`. The file is imported once; the signature is checked
up front and every result is validated (`check_result`)."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Any

from assay.scorers.base import Scorer, ScorerError, check_result


class CustomScorer(Scorer):
    def __init__(self, spec: str):
        path_text, sep, func_name = spec.rpartition(":")
        if not sep or not path_text.endswith(".py") or not func_name:
            raise ScorerError(f"custom scorer {spec!r} must look like path/to/file.py:function")
        path = Path(path_text)
        if not path.is_file():
            raise ScorerError(f"custom scorer file {path} does not exist")
        module_spec = importlib.util.spec_from_file_location(f"assay_custom_scorer_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise ScorerError(f"custom scorer {path} failed to import: {type(exc).__name__}: {exc}") from None
        func = getattr(module, func_name, None)
        if not callable(func):
            raise ScorerError(f"custom scorer {path} has no function {func_name!r}")
        try:
            inspect.signature(func).bind("vibe", {})
        except TypeError:
            raise ScorerError(f"custom scorer {spec}: signature must be (vibe: str, config: dict) -> dict") from None
        self.func, self.name = func, spec

    def score(self, vibe: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            result = self.func(vibe, payload)
        except Exception as exc:
            raise ScorerError(f"custom scorer {self.name} raised {type(exc).__name__}: {exc}") from None
        return check_result(result, self.name)
