"""Which device a model computes on: one resolver for training (`run.device`), serving
(`server.device`) and every inference command's `--device`.

    auto     a CUDA GPU when torch sees one, else the CPU (never MPS: ask for it by name)
    cpu      the CPU
    cuda     the first GPU; under torchrun the GPU of the process's local rank
    cuda:N   GPU N
    mps      Apple's Metal GPU

`resolve_device` checks that the device is there and says so in one line when it is not.
Foundation layer: imports only `assay.errors` (and pydantic; torch when a device is resolved).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator

from assay.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICES = "auto, cpu, cuda, cuda:N or mps"
_SPEC = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device_problem(spec: object) -> str | None:
    """Why `spec` names no device assay knows (None: it does). Whether the device is there is
    `resolve_device`'s question."""
    if isinstance(spec, str) and _SPEC.fullmatch(spec):
        return None
    return f"device {spec!r} is not one of {DEVICES}"


def _checked(spec: str) -> str:
    problem = device_problem(spec)
    if problem:
        raise ValueError(problem)  # pydantic gathers it with the config's other problems
    return spec


# A config key naming a device (run.device, server.device): its syntax is checked with the config.
DeviceSpec = Annotated[str, AfterValidator(_checked)]


def resolve_device(spec: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """The device `spec` names (None means auto), on this machine; ConfigError (one line) if it
    is not a device name or torch does not see it. `cuda` is GPU `local_rank` (torchrun's)."""
    import torch

    if isinstance(spec, torch.device):
        return spec
    spec = "auto" if spec is None else spec
    problem = device_problem(spec)
    if problem:
        raise ConfigError(problem)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "sees no CUDA GPU here" if torch.backends.cuda.is_built() else "was built without CUDA"
            raise ConfigError(f"device {spec!r}: this torch {why}; use cpu (or auto)")
        index = int(spec.partition(":")[2] or local_rank)
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"device {spec!r}: torch sees {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        return torch.device("cuda", index)
    if spec == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps': torch sees no Apple (MPS) GPU here; use cpu (or auto)")
    return torch.device(spec)
