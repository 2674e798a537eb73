"""``policylang check --engine dask``: the bytes of ``--jobs 1``, and one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

pytest.importorskip("distributed")

from distributed import LocalCluster

from policylang.cli import main

HERE = Path(__file__).parent
REPO = HERE.parents[1]
POLICY = str(REPO / "policies" / "default.policy")
FIXTURES = HERE / "fixtures"
INPUTS = [str(FIXTURES / name) for name in ("mixed.jsonl", "samples.jsonl.gz", "array.json")]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    ) as cluster:
        yield cluster.scheduler_address


def check(*args: str) -> Result:
    result = CliRunner().invoke(main, ["check", POLICY, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("output_format", ["jsonl", "csv", "human"])
def test_dask_writes_what_jobs_1_writes(scheduler: str, output_format: str) -> None:
    options = ["--format", output_format, "--max-errors", "2"]
    local = check(*INPUTS, *options, "--jobs", "1")
    on_dask = check(
        *INPUTS, *options, "--engine", "dask", "--scheduler", scheduler, "--partition-size", "100"
    )
    assert on_dask.exit_code == local.exit_code == 1  # some records are invalid
    assert on_dask.stdout == local.stdout
    assert on_dask.stderr == local.stderr
    assert local.stdout.count("\n") > 25


def test_an_unreachable_scheduler_is_exit_2_with_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = check(*INPUTS, "--engine", "dask", "--scheduler", f"tcp://127.0.0.1:{port}")
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: cannot reach the Dask scheduler at `tcp://127.0.0.1:{port}`: ")


def test_scheduler_and_jobs_belong_to_their_engine() -> None:
    result = check(*INPUTS, "--scheduler", "tcp://127.0.0.1:8786")
    assert result.exit_code == 2
    assert "--scheduler needs --engine dask" in result.stderr
    result = check(*INPUTS, "--engine", "dask", "--jobs", "2")
    assert result.exit_code == 2
    assert "--jobs is for --engine local" in result.stderr


def test_without_dask_the_engine_names_the_extra_and_local_runs_work(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import importlib.abc, sys

            class Block(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in {"dask", "distributed"}:
                        raise ModuleNotFoundError(f"No module named {name!r}")
                    return None

            sys.meta_path.insert(0, Block())
            """
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    command = [sys.executable, "-c", "from policylang.cli import main; main()", "check", POLICY]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )

    result = run(INPUTS[2], "--engine", "dask")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: --engine dask needs the optional extra: pip install 'policylang[dask]'\n"
    )
    assert run(INPUTS[2], "-q").returncode == 1  # the local engine still works
