"""Execution engines for ``policylang check``: where the evaluation of a batch runs.

``local`` (the default) evaluates in this process (or its ``--jobs`` workers);
``dask`` evaluates partitions of the inputs on a Dask cluster
(:mod:`policylang.engines.dask`, which needs the optional ``dask`` extra). Both give
the same rows in the same order. This package imports no cluster framework itself,
so the default install stays light.
"""

from __future__ import annotations

import importlib.util
from typing import Final

__all__ = [
    "DASK_EXTRA_HINT",
    "ENGINES",
    "EngineError",
    "EngineUnavailable",
    "dask_available",
]

ENGINES: Final[tuple[str, ...]] = ("local", "dask")
"""The values of ``check --engine``."""

DASK_EXTRA_HINT: Final = "--engine dask needs the optional extra: pip install 'policylang[dask]'"
"""The message shown when Dask is not installed."""


class EngineUnavailable(Exception):
    """The engine's optional dependencies are not installed; the message says what to install."""


class EngineError(Exception):
    """The engine could not run the batch: one line for the user, no traceback.

    ``internal`` is true when the failure is a bug in policylang (an exception raised
    while evaluating on a worker) rather than a problem with the cluster or the inputs.
    """

    def __init__(self, message: str, *, internal: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.internal = internal


def dask_available() -> bool:
    """Whether ``dask.distributed`` can be imported (without importing it)."""
    try:
        return (
            importlib.util.find_spec("dask") is not None
            and importlib.util.find_spec("distributed") is not None
        )
    except (ImportError, ValueError):
        return False
