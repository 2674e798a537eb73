"""Execution engines for ``policylang check``: where the evaluation of a batch runs.

``local`` (the default) evaluates in this process (or its ``--jobs`` workers);
``dask`` evaluates partitions of the inputs on a Dask cluster
(:mod:`policylang.engines.dask`, which needs the optional ``dask`` extra). Both give
the same rows in the same order. This package imports no cluster framework itself,
so the default install stays light.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from policylang.batch import Chunk, ReadFailure, Settings
    from policylang.runtime import Policy

__all__ = [
    "DASK_EXTRA_HINT",
    "ENGINES",
    "EngineError",
    "EngineUnavailable",
    "dask_available",
    "open_run",
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


@contextlib.contextmanager
def open_run(
    policy: Policy,
    paths: Sequence[str],
    settings: Settings | None = None,
    *,
    engine: str = "local",
    jobs: int = 1,
    scheduler: str | None = None,
    partition_size: int | None = None,
    connect_timeout: float | None = None,
) -> Iterator[Generator[Chunk | ReadFailure, None, None]]:
    """The run of ``policy`` over ``paths`` on ``engine``, closed when the block ends.

    ``local`` is :func:`policylang.batch.run` with ``jobs`` processes; ``dask`` is
    :func:`policylang.engines.dask.run_on_dask` on the cluster at ``scheduler`` (a
    local one started for the run without it), in partitions of ``partition_size``
    bytes. Both give the same chunks' text, in input order. For ``dask``, the
    cluster is contacted (waiting up to ``connect_timeout`` seconds) and checked on
    entry, before anything is given, so :class:`EngineUnavailable` and
    :class:`EngineError` come before any output.
    """
    if engine == "local":
        from policylang.batch import run

        local = run(policy, paths, settings, jobs=jobs)
        with contextlib.closing(local):
            yield local
        return
    if engine != "dask":
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    from policylang.engines.dask import DEFAULT_CONNECT_TIMEOUT, dask_client, run_on_dask
    from policylang.engines.partitions import DEFAULT_PARTITION_SIZE

    timeout = DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
    with dask_client(scheduler, connect_timeout=timeout) as client:
        chunks = run_on_dask(
            policy,
            paths,
            settings,
            client=client,
            partition_size=partition_size or DEFAULT_PARTITION_SIZE,
        )
        with contextlib.closing(chunks):
            yield chunks
