"""Ray, for the commands that run with `--engine ray` (the optional extra `assay[ray]`; docs/scale.md).

    with ray_session(address=None) as ray:      # None: a local instance, started here and stopped after
        ...                                      # "auto" or ray://HOST:10001: an existing cluster

One place starts or joins Ray for every command: the row pipelines (`assay.pipeline.ray_engine`)
and the stream producers (`assay data produce --engine ray`). A session already open in this
process (a notebook's `ray.init()`) is used as it is and left running.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from assay.errors import ConfigError

INSTALL_HINT = "pip install 'assay[ray]' (in a checkout: pip install -c constraints.txt -e '.[ray]')"


def import_ray() -> Any:
    """The `ray` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]: fail here, not halfway through a run)
    except ImportError:
        raise ConfigError(f"--engine ray needs Ray: {INSTALL_HINT}") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, initialised: a new local instance when `address` is None (with `num_cpus`, default all
    of this machine's), else the cluster at `address`. Stopped at the end if it was started here."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    # The driver's own C++ core worker logs notes on stderr (e.g. that Ray Data's actors may be
    # restarted); real failures reach us as Python exceptions. A user's setting wins.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": False,  # the actors report their errors per row; their prints are not output
    }
    if address is None:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ConfigError(f"cannot start or reach {where}: {' '.join(str(exc).split())[:300]}") from None
    _quiet(ray)
    try:
        yield ray
    finally:
        ray.shutdown()


def _quiet(ray: Any) -> None:
    """No Ray Data progress bars or INFO lines in the middle of assay's own progress bar."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
