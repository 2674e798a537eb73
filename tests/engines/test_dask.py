"""The Dask engine: the same output as a local run, exact line numbers, clear errors."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from distributed import LocalCluster  # noqa: E402

import policylang  # noqa: E402
from policylang import DiagnosticSink, load_policy  # noqa: E402
from policylang.batch import Chunk, ReadFailure, Settings, Summary, run  # noqa: E402
from policylang.engines import (  # noqa: E402
    DASK_EXTRA_HINT,
    EngineError,
    EngineUnavailable,
    open_run,
)
from policylang.engines.dask import _lines_task, dask_client, run_on_dask  # noqa: E402
from policylang.runtime import Policy  # noqa: E402

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
REPO = HERE.parents[1]
MIXED = FIXTURES / "mixed.jsonl"  # BOM, CRLF, blank line, bad JSON/UTF-8/role, branches, formats
GZIPPED = FIXTURES / "samples.jsonl.gz"
ARRAY = FIXTURES / "array.json"
INPUTS = [str(MIXED), str(GZIPPED), str(ARRAY), str(MIXED)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    # Worker processes, so the policy, the tasks and the results really are pickled.
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    ) as started:
        yield started


@pytest.fixture(scope="module")
def policy() -> Policy:
    loaded = load_policy(str(REPO / "policies" / "default.policy"), DiagnosticSink())
    assert loaded is not None
    return loaded


@dataclasses.dataclass
class Output:
    text: str
    errors: list[str]
    summary: Summary
    failures: list[tuple[int, str, str]]  # (chunks before it, path, reason)
    chunks: int


def collect(items: Iterator[Chunk | ReadFailure]) -> Output:
    out = Output("", [], Summary(), [], 0)
    for item in items:
        if isinstance(item, ReadFailure):
            out.failures.append((len(out.text), item.path, item.error.strerror or ""))
            continue
        out.text += item.text
        out.errors.extend(item.errors)
        out.summary.merge(item.summary)
        out.chunks += 1
        assert item.summary.records == item.records
    return out


def local(policy: Policy, paths: Sequence[str], settings: Settings | None = None) -> Output:
    return collect(run(policy, paths, settings, jobs=1))


def on_dask(
    cluster: LocalCluster,
    policy: Policy,
    paths: Sequence[str],
    settings: Settings | None = None,
    **options: object,
) -> Output:
    items = run_on_dask(
        policy,
        paths,
        settings,
        scheduler=cluster.scheduler_address,
        **options,  # type: ignore[arg-type]
    )
    return collect(items)


def assert_same(expected: Output, got: Output) -> None:
    assert got.text == expected.text
    assert got.errors == expected.errors
    assert got.summary.to_json() == expected.summary.to_json()
    assert [(at, path) for at, path, _ in got.failures] == [
        (at, path) for at, path, _ in expected.failures
    ]


# ---------------------------------------------------------------- same output


@pytest.mark.parametrize("partition_size", [40, 1 << 20])
@pytest.mark.parametrize("output_format", ["jsonl", "human", "csv"])
def test_the_output_is_the_bytes_of_a_local_run(
    cluster: LocalCluster, policy: Policy, partition_size: int, output_format: str
) -> None:
    settings = Settings(output_format=output_format)
    expected = local(policy, INPUTS, settings)
    got = on_dask(cluster, policy, INPUTS, settings, partition_size=partition_size)
    assert_same(expected, got)
    # Every kind of record is in there: decisions, branches, errors from each file kind.
    assert expected.summary.errors >= 7 and expected.summary.decisions > expected.summary.evaluated
    assert {"PL801", "PL802", "PL803"} <= set(expected.summary.codes)
    assert "index" in expected.text or output_format != "jsonl"


def test_only_conformance_and_the_record_size_limit_are_applied_on_the_workers(
    cluster: LocalCluster, policy: Policy
) -> None:
    settings = Settings(only=frozenset({"end"}), conformance=True, max_record_size=150)
    expected = local(policy, INPUTS, settings)
    got = on_dask(cluster, policy, INPUTS, settings, partition_size=64)
    assert_same(expected, got)
    assert "PL810" in expected.summary.codes
    assert '"outcome":"continue"' not in got.text


def test_small_partitions_number_every_line_exactly(
    cluster: LocalCluster, policy: Policy, tmp_path: Path
) -> None:
    # Records of very different sizes, blank lines and bad lines, cut into many partitions.
    lines = []
    for number in range(120):
        content = "word " * (number * 7 % 53)
        if number % 17 == 5:
            lines.append("{not json")
        elif number % 13 == 0:
            lines.append("")
        else:
            record = {"id": f"c{number}", "messages": [{"role": "user", "content": content}]}
            lines.append(json.dumps(record))
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = local(policy, [str(path)])
    got = on_dask(cluster, policy, [str(path)], partition_size=97)
    assert_same(expected, got)
    assert got.chunks > 100  # one per partition
    documents = [json.loads(line) for line in got.text.splitlines()]
    assert [d["line"] for d in documents] == [
        number + 1 for number, line in enumerate(lines) if line
    ]


def test_standard_input_is_read_on_the_driver_and_evaluated_on_the_workers(
    cluster: LocalCluster, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = MIXED.read_bytes() + gzip.decompress(GZIPPED.read_bytes())

    def stdin() -> io.TextIOWrapper:
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")

    monkeypatch.setattr(sys, "stdin", stdin())
    expected = local(policy, ["-", str(ARRAY)])
    monkeypatch.setattr(sys, "stdin", stdin())
    got = on_dask(cluster, policy, ["-", str(ARRAY)], partition_size=300)
    assert_same(expected, got)
    assert got.chunks > 3
    assert '"file":"<stdin>"' in got.text


def test_a_missing_input_is_reported_in_its_place_and_the_run_goes_on(
    cluster: LocalCluster, policy: Policy, tmp_path: Path
) -> None:
    paths = [str(MIXED), str(tmp_path / "missing.jsonl"), str(ARRAY)]
    expected = local(policy, paths)
    got = on_dask(cluster, policy, paths, partition_size=100)
    assert_same(expected, got)
    [(_, path, reason)] = got.failures
    assert path == paths[1]
    assert reason == "No such file or directory"


def test_a_file_a_worker_cannot_read_names_the_worker_and_keeps_what_was_read(
    cluster: LocalCluster, policy: Policy, tmp_path: Path
) -> None:
    path = tmp_path / "vanishing.jsonl"
    path.write_bytes(MIXED.read_bytes())
    items = run_on_dask(
        policy,
        [str(path), str(ARRAY)],
        scheduler=cluster.scheduler_address,
        partition_size=200,
        window=1,
    )
    first = next(items)
    assert isinstance(first, Chunk) and first.records > 0
    path.unlink()  # the driver planned it; the workers can no longer open it
    rest = list(items)
    failures = [item for item in rest if isinstance(item, ReadFailure)]
    [failure] = failures
    assert failure.path == str(path)
    assert "Dask worker tcp://" in str(failure.error.strerror)
    assert "every worker must be able to read the inputs at the same path" in str(
        failure.error.strerror
    )
    # The next input is still evaluated.
    assert any(
        isinstance(item, Chunk) and '"file":"' + str(ARRAY) + '"' in item.text for item in rest
    )


def test_a_worker_task_reports_a_read_failure_instead_of_raising(
    policy: Policy, tmp_path: Path
) -> None:
    chunk, failure = _lines_task(
        policy, Settings(), "given.jsonl", str(tmp_path / "nope.jsonl"), 0, 10, 0
    )
    assert chunk.records == 0 and chunk.text == ""
    assert failure is not None
    assert str(failure.strerror).startswith("No such file or directory (on a Dask worker;")


class FakeTask:
    """A task run at once in this process, whose result is handed over when asked for."""

    def __init__(self, cluster: FakeCluster, value: object, counted: bool) -> None:
        self.cluster, self.value, self.counted, self.done = cluster, value, counted, False

    def result(self) -> object:
        return self.value

    def release(self) -> None:
        self._finish()

    def cancel(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self.counted and not self.done:
            self.done = True
            self.cluster.in_flight -= 1


class FakeCluster:
    """Just enough of a Dask client to watch how many partitions are in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.submitted = 0

    def submit(self, func: Any, *args: object, priority: int = 0, pure: bool = True) -> FakeTask:
        counted = func.__name__ != "_count_task"  # newline counts are all asked for up front
        if counted:
            self.in_flight += 1
            self.submitted += 1
            self.most = max(self.most, self.in_flight)
        value = func(*[arg.value if isinstance(arg, FakeTask) else arg for arg in args])
        return FakeTask(self, value, counted)

    def scatter(self, data: object, broadcast: bool = False, hash: bool = True) -> FakeTask:
        return FakeTask(self, data, counted=False)

    def nthreads(self) -> dict[str, int]:
        return {"fake": 1}

    def run(self, function: Any) -> dict[str, object]:
        return {"fake": function()}

    def wait_for_workers(self, n_workers: int, timeout: float | None = None) -> None:
        pass


@pytest.mark.parametrize("window", [1, 3])
def test_at_most_window_partitions_are_in_flight(policy: Policy, window: int) -> None:
    fake = FakeCluster()
    chunks = run_on_dask(
        policy,
        INPUTS,
        client=fake,  # type: ignore[arg-type]
        partition_size=40,
        window=window,
    )
    got = collect(chunks)
    assert fake.submitted > 40
    assert fake.most == window
    assert fake.in_flight == 0  # every result was fetched and released
    assert_same(local(policy, INPUTS), got)


# ---------------------------------------------------------------- errors


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_scheduler_is_one_clear_error(policy: Policy) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(EngineError) as caught:
        next(run_on_dask(policy, [str(MIXED)], scheduler=address, connect_timeout=1))
    message = caught.value.message
    assert message.startswith(f"cannot reach the Dask scheduler at `{address}`: ")
    assert "Connection refused" in message
    assert "\n" not in message
    assert not caught.value.internal


def test_dask_client_connects_and_checks_before_any_work(
    cluster: LocalCluster, policy: Policy
) -> None:
    with dask_client(cluster.scheduler_address) as client:
        got = collect(run_on_dask(policy, [str(ARRAY)], client=client))
        assert client.status == "running"  # the run leaves a client it was given open
    assert client.status == "closed"
    assert_same(local(policy, [str(ARRAY)]), got)
    entered = False
    with (
        pytest.raises(EngineError, match=r"^cannot reach the Dask scheduler"),
        dask_client(f"tcp://127.0.0.1:{_free_port()}", connect_timeout=1),
    ):
        entered = True
    assert not entered


def test_open_run_connects_on_entry_and_gives_what_the_local_engine_gives(
    cluster: LocalCluster, policy: Policy
) -> None:
    settings = Settings(output_format="csv")
    with open_run(policy, INPUTS, settings, engine="local", jobs=2) as chunks:
        expected = collect(chunks)
    with open_run(
        policy,
        INPUTS,
        settings,
        engine="dask",
        scheduler=cluster.scheduler_address,
        partition_size=100,
    ) as chunks:
        got = collect(chunks)
    assert_same(expected, got)
    with pytest.raises(EngineError, match=r"^cannot reach the Dask scheduler"):
        open_run(
            policy, INPUTS, engine="dask", scheduler=f"tcp://127.0.0.1:{_free_port()}"
        ).__enter__()  # refused at once: no wait for the connect timeout


def test_a_scheduler_that_does_not_answer_is_reported_after_the_timeout(policy: Policy) -> None:
    # Something listens but never speaks (nothing accepts the connection).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(EngineError) as caught:
            next(run_on_dask(policy, [str(MIXED)], scheduler=address, connect_timeout=0.5))
    assert caught.value.message.startswith(
        f"cannot reach the Dask scheduler at `{address}`: no answer within 0.5 s "
        "(is it running, and is the address right? A scheduler listens on 8786 by default"
    )


def test_a_malformed_scheduler_address_is_one_clear_error(policy: Policy) -> None:
    with pytest.raises(EngineError, match=r"`localhost` is not a Dask scheduler address"):
        next(run_on_dask(policy, [str(MIXED)], scheduler="localhost", connect_timeout=1))


def test_a_cluster_without_workers_is_reported(policy: Policy) -> None:
    with LocalCluster(n_workers=0, processes=False, dashboard_address="127.0.0.1:0") as empty:
        items = run_on_dask(
            policy, [str(MIXED)], scheduler=empty.scheduler_address, connect_timeout=0.5
        )
        with pytest.raises(EngineError, match=r"the Dask cluster has no workers"):
            next(items)


def test_workers_running_another_policylang_are_refused(
    cluster: LocalCluster, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker processes keep the real version; only this process pretends.
    monkeypatch.setattr(policylang, "__version__", "0.0.0-test")
    with pytest.raises(EngineError) as caught:
        on_dask(cluster, policy, [str(MIXED)])
    assert "and 1 more runs policylang " in caught.value.message
    assert "this is 0.0.0-test; install the same version on every worker" in caught.value.message


def test_an_exception_on_a_worker_names_the_partition_and_is_internal(
    cluster: LocalCluster, policy: Policy
) -> None:
    broken = dataclasses.replace(policy, categories=(None,))  # type: ignore[arg-type]
    with pytest.raises(EngineError) as caught:
        on_dask(cluster, broken, [str(MIXED)])
    assert caught.value.internal
    message = caught.value.message
    assert message.startswith(f"evaluating {MIXED} bytes 0-{MIXED.stat().st_size} on a Dask worker")
    assert "failed: AttributeError" in message


def test_a_local_cluster_that_cannot_start_is_one_clear_error(
    policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(**_options: object) -> LocalCluster:
        raise RuntimeError("Nanny failed to start.")

    monkeypatch.setattr(distributed, "LocalCluster", fail)
    with pytest.raises(EngineError) as caught:
        next(run_on_dask(policy, [str(ARRAY)]))
    assert caught.value.message.startswith(
        "cannot start a local Dask cluster: Nanny failed to start. (start one with "
    )
    assert not caught.value.internal


def test_without_a_scheduler_a_local_cluster_runs_the_batch(policy: Policy) -> None:
    expected = local(policy, [str(ARRAY)])
    assert_same(expected, collect(run_on_dask(policy, [str(ARRAY)])))


# ---------------------------------------------------------------- optional dependency

_BLOCK_DASK = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"dask", "distributed"}:
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", _BLOCK_DASK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_without_dask_the_cli_works_and_the_engine_names_the_extra() -> None:
    result = _python(
        """
        import sys
        from click.testing import CliRunner
        from policylang.cli import main
        from policylang.engines import dask_available
        from policylang.engines.dask import run_on_dask
        from policylang.engines import EngineUnavailable

        assert CliRunner().invoke(main, ["--help"]).exit_code == 0
        assert not dask_available()
        try:
            next(run_on_dask(None, [], scheduler="tcp://127.0.0.1:1"))
        except EngineUnavailable as exc:
            print(exc)
        assert not any(name.split(".")[0] in {"dask", "distributed"} for name in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == DASK_EXTRA_HINT
    assert DASK_EXTRA_HINT == (
        "--engine dask needs the optional extra: pip install 'policylang[dask]'"
    )


def test_importing_the_cli_does_not_import_dask() -> None:
    code = "import sys, policylang.cli, policylang.engines.dask; print(*sorted(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    modules = result.stdout.split()
    assert "policylang.engines.dask" in modules
    assert "dask" not in modules and "distributed" not in modules


def test_engine_unavailable_is_an_exception_with_the_hint() -> None:
    error = EngineUnavailable(DASK_EXTRA_HINT)
    assert str(error) == DASK_EXTRA_HINT
