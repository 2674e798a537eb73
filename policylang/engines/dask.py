"""Evaluating transcripts on a Dask cluster, with the same rows in the same order as a local run.

The driver (this process) plans partitions (:mod:`policylang.engines.partitions`),
ships the policy to every worker once, and submits one task per partition. Workers
read their partition from the file themselves, so every input path must be readable
by every worker (a shared filesystem, or the same machine). Plain JSONL files are
split into byte ranges; a first round of small tasks counts the newlines of each
range so that every partition knows the exact number of its first line. A gzip or
JSON array file is one partition. Standard input is read on the driver and shipped
in chunks of lines.

Each task evaluates and renders its partition as :func:`policylang.batch.run` would,
into one :class:`~policylang.batch.Chunk`. Results are gathered in input order with a
bounded window of tasks in flight: a partition's chunk is given as soon as every
earlier one has been, so the driver holds at most one partition's output at a time.

Dask is an optional dependency (``pip install 'policylang[dask]'``): it is imported
only when :func:`run_on_dask` runs, and :class:`~policylang.engines.EngineUnavailable`
says what to install when it is missing. The task functions below run on workers
and need only policylang.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import gc
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias, TypeVar

from policylang.batch import (
    Chunk,
    ReadFailure,
    Row,
    Settings,
    Summary,
    evaluate_lines,
    evaluate_records,
    row_format,
)
from policylang.engines import DASK_EXTRA_HINT, EngineError, EngineUnavailable
from policylang.engines.partitions import (
    DEFAULT_PARTITION_SIZE,
    FilePlan,
    count_newlines,
    plan_file,
    read_lines,
)
from policylang.transcripts import STDIN, STDIN_NAME, RawLine, RecordResult, iter_lines

if TYPE_CHECKING:
    from distributed import Client

    from policylang.runtime import Policy

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "dask_client",
    "run_on_dask",
]

DEFAULT_CONNECT_TIMEOUT: Final = 10.0
"""Seconds to wait for the scheduler to answer, and for a first worker to join."""

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)

_LINES_PER_CALL: Final = 256
"""Lines handed to :func:`~policylang.batch.evaluate_lines` at a time on a worker."""

_RESULT_SIZE: Final = 1024
"""What a record parsed on the driver (an element of a JSON array) counts for in a chunk."""


# Typed views of the parts of dask.distributed used here (its client is not annotated).


class _Task(Protocol[_T_co]):
    """A submitted task (``distributed.Future``)."""

    def result(self) -> _T_co:
        """Wait for the task and return its value, or raise its exception."""
        ...

    def cancel(self) -> object:
        """Stop the task if it has not run, and forget it."""
        ...

    def release(self) -> object:
        """Let the cluster forget the task's result."""
        ...


class _Comm(Protocol):
    """A connection to a Dask server (``distributed.comm.Comm``)."""

    async def close(self) -> None:
        """Close the connection."""
        ...


class _Cluster(Protocol):
    """A connected client (``distributed.Client``)."""

    def submit(
        self, func: Callable[..., _T], *args: object, priority: int = ..., pure: bool = ...
    ) -> _Task[_T]:
        """Run ``func(*args)`` on a worker."""
        ...

    def scatter(self, data: _T, *, broadcast: bool = ..., hash: bool = ...) -> _Task[_T]:
        """Send ``data`` to the workers."""
        ...

    def nthreads(self) -> dict[str, int]:
        """Threads per worker address."""
        ...

    def run(self, function: Callable[[], _T]) -> dict[str, _T]:
        """Run ``function`` on every worker now; its value per worker address."""
        ...

    def wait_for_workers(self, n_workers: int, timeout: float | None = ...) -> None:
        """Wait until the cluster has ``n_workers`` workers (``TimeoutError`` if not)."""
        ...


# ---------------------------------------------------------------- worker side


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return f"Dask worker {get_worker().address}"
    except (ImportError, ValueError):
        return "a Dask worker"


def _worker_error(exc: OSError) -> OSError:
    """``exc``, saying which worker met it and what every worker needs."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OSError(
        exc.errno,
        f"{reason} (on {_worker_address()}; every worker must be able to read "
        "the inputs at the same path)",
    )


def _count_task(path: str, start: int, end: int) -> int | OSError:
    """Newlines in ``[start, end)`` of ``path``, or why the file could not be read."""
    try:
        return count_newlines(path, start, end)
    except OSError as exc:
        return _worker_error(exc)


def _lines_task(
    policy: Policy,
    settings: Settings,
    name: str,
    path: str,
    start: int,
    end: int,
    newlines_before: int,
) -> tuple[Chunk, OSError | None]:
    """Evaluate the lines that start in ``[start, end)`` of a plain JSONL file."""
    failures: list[OSError] = []
    items = _guarded(
        lambda: read_lines(
            path,
            start,
            end,
            newlines_before,
            name=name,
            max_record_size=settings.max_record_size,
        ),
        failures,
    )
    chunk = _evaluate(policy, settings, name, items, end - start)
    return chunk, failures[0] if failures else None


def _file_task(
    policy: Policy, settings: Settings, name: str, path: str, size: int
) -> tuple[Chunk, OSError | None]:
    """Evaluate a whole file (gzip-compressed or a JSON array)."""
    failures: list[OSError] = []
    items = _guarded(
        lambda: iter_lines(
            path,
            settings.input_format,
            name=name,
            max_record_size=settings.max_record_size,
            limits=settings.limits,
        ),
        failures,
    )
    return _evaluate(policy, settings, name, items, size), failures[0] if failures else None


def _items_task(
    policy: Policy, settings: Settings, name: str, items: list[RawLine | RecordResult], read: int
) -> tuple[Chunk, OSError | None]:
    """Evaluate items read on the driver (standard input)."""
    return _evaluate(policy, settings, name, items, read), None


def _guarded(open_items: Callable[[], Iterator[_T]], failures: list[OSError]) -> Iterator[_T]:
    """The items, stopping at a read failure, which is appended to ``failures``."""
    try:
        yield from open_items()
    except OSError as exc:
        failures.append(_worker_error(exc))


def _evaluate(
    policy: Policy,
    settings: Settings,
    name: str,
    items: Iterable[RawLine | RecordResult],
    read: int,
) -> Chunk:
    """Evaluate items as :func:`policylang.batch.run` does, into one rendered chunk."""
    fmt = row_format(settings.output_format, conformance=settings.conformance)
    summary = Summary()
    parts: list[str] = []
    errors: list[str] = []
    records = 0
    lines: list[RawLine] = []

    def add(rows: list[Row]) -> None:
        for row in rows:
            summary.add(row)
            if row.error is not None:
                errors.append(row.error)
            if row.outcome is None or not settings.only or row.outcome in settings.only:
                parts.append(fmt.render(row))

    def flush() -> None:
        if lines:
            add(
                evaluate_lines(
                    policy,
                    name,
                    lines,
                    settings.input_format,
                    conformance=settings.conformance,
                    limits=settings.limits,
                )
            )
            lines.clear()

    for item in items:
        records += 1
        if isinstance(item, tuple):
            lines.append(item)
            if len(lines) >= _LINES_PER_CALL:
                flush()
        else:
            flush()
            add(evaluate_records(policy, [item], conformance=settings.conformance))
    flush()
    return Chunk("".join(parts), summary, tuple(errors), records, read)


def _worker_version() -> str:
    """The policylang version a worker runs (checked before any work is sent)."""
    from policylang import __version__

    return __version__


# ---------------------------------------------------------------- driver side

_Result: TypeAlias = "tuple[Chunk, OSError | None]"
_Submit: TypeAlias = Callable[[_Cluster, "_Task[Policy]"], "_Task[_Result]"]


@dataclass(frozen=True, slots=True)
class _Unit:
    """One partition, in output order: a task to submit, or a read failure to report.

    ``source`` is the position of its input among the paths (the same file may be
    given twice); ``path`` is that input as given; ``where`` names the partition in
    messages.
    """

    source: int
    path: str
    where: str
    submit: _Submit | None = None
    failure: OSError | None = None


def run_on_dask(
    policy: Policy,
    paths: Sequence[str],
    settings: Settings | None = None,
    *,
    scheduler: str | None = None,
    client: Client | None = None,
    partition_size: int = DEFAULT_PARTITION_SIZE,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    window: int | None = None,
) -> Generator[Chunk | ReadFailure, None, None]:
    """Evaluate every record of ``paths`` (``-`` is standard input) on a Dask cluster.

    Gives what :func:`policylang.batch.run` gives for the same arguments, in the same
    order: the chunks, once joined, are the same bytes, and a file that cannot be read
    gives a :class:`~policylang.batch.ReadFailure` where its output would have been
    (after the output of what was read before the failure). Chunks are one per
    partition rather than per few hundred records.

    ``client`` is a connected client (see :func:`dask_client`); without one, the
    client is made here, for ``scheduler``: the address of a running scheduler
    (``tcp://host:8786``), or ``None`` to start a local cluster for the run;
    ``connect_timeout`` bounds the wait for the scheduler and for a first worker.
    ``partition_size`` is the number of bytes of a plain JSONL file per task
    (standard input is shipped in chunks of about that many bytes of lines);
    ``window`` is how many tasks may be in flight at once (default: twice the
    cluster's threads).

    The cluster is contacted when iteration starts; closing the iterator cancels
    the tasks in flight. Raises :class:`~policylang.engines.EngineUnavailable` when
    Dask is not installed, and :class:`~policylang.engines.EngineError` when the
    cluster cannot be reached, has no workers, runs another policylang version, or
    a task fails.
    """
    _require_dask()
    if partition_size < 1:
        raise ValueError("the partition size must be at least 1 byte")
    settings = settings or Settings()
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(scheduler, connect_timeout=connect_timeout))
        else:
            _check_workers(client, connect_timeout)
        cluster = _typed(client)
        if window is None:
            window = 2 * sum(cluster.nthreads().values())
        shipped = cluster.scatter(policy, broadcast=True, hash=False)
        try:
            units = _units(cluster, list(paths), settings, partition_size)
            yield from _gather(cluster, shipped, settings, units, max(1, window))
        finally:
            shipped.release()


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> Iterator[Client]:
    """A client of the Dask scheduler at ``scheduler``, ready for :func:`run_on_dask`.

    Without ``scheduler``, a local cluster (one single-threaded worker process per
    CPU, listening on 127.0.0.1 only) is started, and stopped when the block ends.
    Checks that the cluster has a worker (waiting up to ``connect_timeout`` seconds
    for one) and that its workers run this policylang version, so that problems are
    reported before any work starts. Raises
    :class:`~policylang.engines.EngineUnavailable` when Dask is not installed and
    :class:`~policylang.engines.EngineError` with a one-line message otherwise.
    """
    _require_dask()
    with contextlib.ExitStack() as stack:
        client = _connect(scheduler, connect_timeout, stack)
        _check_workers(client, connect_timeout)
        yield client


def _typed(client: Client) -> _Cluster:
    """The client, seen through the annotated view of the calls made here."""
    return client


def _require_dask() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise EngineUnavailable(DASK_EXTRA_HINT) from None


def _connect(scheduler: str | None, timeout: float, stack: contextlib.ExitStack) -> Client:
    """A client of the scheduler at ``scheduler``, or of a new local cluster."""
    from distributed import Client, LocalCluster

    connect: Callable[..., Client] = Client
    if scheduler is None:
        start: Callable[..., contextlib.AbstractContextManager[object]] = LocalCluster
        try:
            cluster = stack.enter_context(
                start(
                    threads_per_worker=1,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    silence_logs=logging.CRITICAL,  # failures are reported here, in one line
                )
            )
        except Exception as exc:
            detail = str(exc).strip() or type(exc).__name__
            raise EngineError(
                f"cannot start a local Dask cluster: {detail} (start one with `dask scheduler` "
                "and `dask worker`, and give its address with --scheduler)"
            ) from None
        return stack.push(connect(cluster, set_as_default=False))
    refused = _probe(scheduler, timeout)
    if refused is not None:
        raise EngineError(_cannot_reach(scheduler, refused))
    if not _answers(scheduler, timeout):
        # Dask's client would wait for ever on a server that accepts but never answers.
        raise EngineError(_cannot_reach(scheduler, f"no answer within {timeout:g} s"))
    # A client that failed to connect complains from its finalizer; keep that quiet.
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    try:
        try:
            client = connect(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, ValueError) as exc:
            message = _unreachable(scheduler, exc, timeout)
        else:
            return stack.push(client)
        gc.collect()
    finally:
        sys.unraisablehook = hook
    raise EngineError(message)


def _probe(scheduler: str, timeout: float) -> str | None:
    """Why a TCP scheduler address cannot be connected to at all, or ``None``.

    Dask keeps retrying a refused connection until its timeout; a plain socket
    tells at once that nothing listens there or that the host is unknown.
    """
    host, port = _tcp_host_port(scheduler)
    if host is None or port is None:
        return None
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 2.0)):
            return None
    except (ConnectionRefusedError, socket.gaierror) as exc:
        return exc.strerror or str(exc)
    except OSError:
        return None  # slow or filtered: let Dask try, with its timeout


def _answers(scheduler: str, timeout: float) -> bool:
    """Whether the server at ``scheduler`` completes Dask's handshake within ``timeout``.

    Failures other than silence (a malformed address, a refused connection) count as
    an answer here: the client reports them. Runs in its own thread and event loop,
    so it works when the caller's thread already runs one.
    """
    from distributed.comm.core import connect

    open_comm: Callable[..., Awaitable[_Comm]] = connect

    async def handshake() -> None:
        comm = await open_comm(scheduler, timeout=timeout)
        await comm.close()

    def attempt() -> bool:
        try:
            asyncio.run(asyncio.wait_for(handshake(), timeout + 1.0))
        except TimeoutError:
            return False
        except (OSError, ValueError):
            return True
        return True

    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        return executor.submit(attempt).result()


def _unreachable(scheduler: str, exc: Exception, timeout: float) -> str:
    """One line saying why connecting to the scheduler failed."""
    if isinstance(exc, ValueError):
        return f"`{scheduler}` is not a Dask scheduler address: {exc} (expected tcp://HOST:PORT)"
    return _cannot_reach(scheduler, f"no answer within {timeout:g} s")


def _cannot_reach(scheduler: str, reason: str) -> str:
    return (
        f"cannot reach the Dask scheduler at `{scheduler}`: {reason} "
        "(is it running, and is the address right? A scheduler listens on 8786 by default; "
        "8787 is its dashboard)"
    )


def _tcp_host_port(address: str) -> tuple[str | None, int | None]:
    scheme, _, rest = address.rpartition("://")
    if scheme not in {"", "tcp"}:
        return None, None
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        return None, None
    return host, int(port)


def _check_workers(client: _Cluster, timeout: float) -> None:
    """Fail early, with a reason, when the cluster cannot run policylang's tasks."""
    from policylang import __version__

    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise EngineError(
            f"the Dask cluster has no workers (waited {timeout:g} s); "
            "start some with `dask worker SCHEDULER-ADDRESS`"
        ) from None
    try:
        versions: dict[str, str] = client.run(_worker_version)
    except ImportError as exc:
        raise EngineError(
            f"the Dask workers cannot import policylang ({exc}); "
            f"install policylang {__version__} on every worker"
        ) from None
    other = sorted((addr, version) for addr, version in versions.items() if version != __version__)
    if other:
        address, version = other[0]
        more = f" and {len(other) - 1} more" if len(other) > 1 else ""
        raise EngineError(
            f"Dask worker {address}{more} runs policylang {version}, this is {__version__}; "
            "install the same version on every worker"
        )


def _units(
    client: _Cluster, paths: list[str], settings: Settings, partition_size: int
) -> Iterator[_Unit]:
    """Every partition of every input, in output order."""
    plans: list[FilePlan | OSError | None] = []
    for path in paths:
        if path == STDIN:
            plans.append(None)
            continue
        try:
            plans.append(plan_file(path, partition_size))
        except OSError as exc:
            plans.append(exc)
    # The newline counts of every range but the last of each file, asked for up front:
    # they are quick, and each partition needs those of the ranges before it.
    counts: dict[int, list[_Task[int | OSError]]] = {}
    for source, plan in enumerate(plans):
        if isinstance(plan, FilePlan) and plan.kind == "lines" and len(plan.ranges) > 1:
            counts[source] = [
                client.submit(_count_task, plan.path, start, end, priority=1, pure=False)
                for start, end in plan.ranges[:-1]
            ]
    for source, (path, plan) in enumerate(zip(paths, plans, strict=True)):
        if plan is None:
            yield from _stdin_units(source, settings, partition_size)
        elif isinstance(plan, OSError):
            yield _Unit(source, path, path, failure=plan)
        elif plan.kind == "whole":
            submit = _submitter(_file_task, settings, plan.name, plan.path, plan.size)
            yield _Unit(source, path, plan.name, submit=submit)
        else:
            yield from _line_units(source, plan, counts.get(source, []), settings)


def _submitter(task: Callable[..., _Result], *args: object) -> _Submit:
    """Submits ``task(policy, *args)``; the policy is the copy already on the workers."""

    def submit(client: _Cluster, policy: _Task[Policy]) -> _Task[_Result]:
        return client.submit(task, policy, *args, pure=False)

    return submit


def _line_units(
    source: int, plan: FilePlan, counts: list[_Task[int | OSError]], settings: Settings
) -> Iterator[_Unit]:
    newlines_before = 0
    for number, (start, end) in enumerate(plan.ranges):
        where = f"{plan.name} bytes {start}-{end}"
        submit = _submitter(
            _lines_task, settings, plan.name, plan.path, start, end, newlines_before
        )
        yield _Unit(source, plan.name, where, submit=submit)
        if number < len(counts):
            count = _result(counts[number], f"{where} (counting lines)")
            if isinstance(count, OSError):
                yield _Unit(source, plan.name, where, failure=count)
                return
            newlines_before += count


def _stdin_units(source: int, settings: Settings, chunk_size: int) -> Iterator[_Unit]:
    """Standard input, read here and shipped in chunks of about ``chunk_size`` bytes."""
    items: list[RawLine | RecordResult] = []
    size = 0
    failure: OSError | None = None
    try:
        for item in iter_lines(
            STDIN,
            settings.input_format,
            max_record_size=settings.max_record_size,
            limits=settings.limits,
        ):
            items.append(item)
            size += len(item[1]) if isinstance(item, tuple) else _RESULT_SIZE
            if size >= chunk_size:
                submit = _submitter(_items_task, settings, STDIN_NAME, items, size)
                yield _Unit(source, STDIN, STDIN_NAME, submit=submit)
                items, size = [], 0
    except OSError as exc:
        failure = exc
    if items:
        submit = _submitter(_items_task, settings, STDIN_NAME, items, size)
        yield _Unit(source, STDIN, STDIN_NAME, submit=submit)
    if failure is not None:
        yield _Unit(source, STDIN, STDIN_NAME, failure=failure)


def _gather(
    client: _Cluster,
    policy: _Task[Policy],
    settings: Settings,
    units: Iterator[_Unit],
    window: int,
) -> Iterator[Chunk | ReadFailure]:
    """Submit ``units`` keeping at most ``window`` in flight; give the results in order.

    Results are fetched from the workers in submission order, so a finished task's
    output stays on its worker until every earlier task's output has been given.
    """
    queue: collections.deque[tuple[_Unit, _Task[_Result] | None]] = collections.deque()
    failed: set[int] = set()

    def fill() -> None:
        while len(queue) < window:
            unit = next(units, None)
            if unit is None:
                return
            if unit.source not in failed:
                future = unit.submit(client, policy) if unit.submit is not None else None
                queue.append((unit, future))

    try:
        fill()
        while queue:
            unit, future = queue.popleft()
            if unit.source in failed:
                if future is not None:
                    future.cancel()
                fill()
                continue
            failure = unit.failure
            if future is not None:
                chunk, failure = _result(future, unit.where)
                future.release()
                yield chunk
            if failure is not None:
                failed.add(unit.source)
                yield ReadFailure(unit.path, failure)
            fill()
    finally:
        for _, future in queue:
            if future is not None:
                future.cancel()


def _result(future: _Task[_T], where: str) -> _T:
    """A task's result; a failed task becomes an :class:`EngineError` naming its partition."""
    from distributed import CancelledError

    try:
        return future.result()
    except CancelledError:
        raise EngineError(
            f"the Dask cluster lost the task for {where} (did the scheduler stop?)"
        ) from None
    except Exception as exc:
        if type(exc).__name__ == "KilledWorker":
            raise EngineError(
                f"Dask workers died while evaluating {where} (out of memory?)"
            ) from None
        detail = str(exc).strip()
        what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        raise EngineError(
            f"evaluating {where} on a Dask worker failed: {what}", internal=True
        ) from None
