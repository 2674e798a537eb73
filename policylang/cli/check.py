"""``policylang check``: run a policy over transcript files and report every decision.

The work is done by :func:`policylang.batch.run`: this module parses the options,
writes the rows it hands back (to stdout, or atomically to ``--output``), shows
progress and the invalid records on stderr, and ends with a summary table. Every
record is accounted for: records read = records evaluated + invalid records.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from typing import IO, Final, cast

import click

from policylang.batch import (
    DEFAULT_MAX_RECORD_SIZE,
    OUTPUT_FORMATS,
    Chunk,
    ReadFailure,
    Settings,
    Summary,
    WorkerFailed,
    default_jobs,
    format_size,
    parse_size,
    row_format,
    run,
)
from policylang.cli._common import (
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    color_option,
    describe_os_error,
    format_option,
    guarded,
    load_policy_or_exit_code,
    max_errors_option,
    open_output,
    tenant_option,
)
from policylang.engines import ENGINES, EngineError, EngineUnavailable, open_run
from policylang.engines.partitions import DEFAULT_PARTITION_SIZE
from policylang.formats import FORMATS, InputFormat, expand_inputs
from policylang.limits import DEFAULT_MAX_MESSAGE_LENGTH, DEFAULT_MAX_MESSAGES
from policylang.transcripts import STDIN

__all__ = ["EXIT_INTERRUPTED", "ONLY_CHOICES", "check_command"]

ONLY_CHOICES: Final[dict[str, str]] = {
    "ended": "end",
    "escalated": "escalate",
    "warned": "warn",
    "continued": "continue",
}
EXIT_INTERRUPTED: Final = 130
"""Stopped by Ctrl-C (128 + SIGINT, as shells report it)."""

_CLEAR_LINE: Final = "\r\x1b[K"


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """``--max-record-size``: bytes, or ``512K``, ``256M``, ``1G``."""
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _output(path: str) -> contextlib.AbstractContextManager[IO[str]]:
    """Where the rows go: stdout, or ``path`` as :func:`open_output` writes it."""
    return _stdout() if path == "-" else open_output(path)


@contextlib.contextmanager
def _stdout() -> Iterator[IO[str]]:
    yield sys.stdout
    sys.stdout.flush()


class _Progress:
    """A progress bar on stderr, by bytes read when every input's size is known."""

    def __init__(self, paths: tuple[str, ...]) -> None:
        sizes = [_input_size(path) for path in paths]
        known = None if None in sizes else sum(size or 0 for size in sizes)
        self.records = 0
        self.bar = click.progressbar(
            iter(int, 1),  # only update() moves the bar
            length=known,
            label="checking",
            file=sys.stderr,
            show_eta=known is not None,
            show_percent=known is not None,
            item_show_func=self._shown,
        )
        self.bar.__enter__()

    def _shown(self, _item: object) -> str:
        return f"{self.records:,} records"

    def update(self, read: int, records: int) -> None:
        self.records += records
        self.bar.update(read, None)

    def interject(self, line: str) -> None:
        """Print a line above the bar."""
        click.echo(_CLEAR_LINE + line, err=True)

    def close(self) -> None:
        self.bar.__exit__(None, None, None)


def _input_size(path: str) -> int | None:
    if path == STDIN:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return 0  # reported as a read failure
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------- command


@click.command("check")
@click.argument("policy", type=click.Path(exists=True, dir_okay=False))
@click.argument(
    "transcripts",
    nargs=-1,
    required=True,
    type=click.Path(allow_dash=True),
)
@click.option(
    "--input-format",
    "input_format",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Transcript record format; auto detects it per record.",
)
@click.option(
    "-o",
    "--output",
    "output",
    default="-",
    show_default=True,
    metavar="FILE|-",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Where to write results; - for stdout. A file is replaced only when the run ends.",
)
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(tuple(ONLY_CHOICES)),
    help="Write only decisions with this outcome (repeatable); invalid records are always written.",
)
@format_option(
    OUTPUT_FORMATS,
    "jsonl",
    "jsonl: one JSON object per record; csv: one row per record, with a header; "
    "human: an aligned table.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Worker processes (default: every CPU this process may use); 1 runs in this process.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="Where records are evaluated: local (this machine, --jobs processes) or dask "
    "(a Dask cluster; needs pip install 'policylang[dask]'). The output is the same.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="With --engine dask: the scheduler, e.g. tcp://10.0.0.5:8786 "
    "(default: a local cluster started for the run).",
)
@click.option(
    "--partition-size",
    default=format_size(DEFAULT_PARTITION_SIZE),
    callback=_size,
    show_default=True,
    metavar="SIZE",
    help="With --engine dask: bytes of a JSONL file per task (gzip and JSON array files "
    "are one task each).",
)
@click.option(
    "--max-record-size",
    default=format_size(DEFAULT_MAX_RECORD_SIZE),
    callback=_size,
    show_default=True,
    metavar="SIZE",
    help="Longest JSONL record read (bytes, or 512K, 256M, 1G); a longer one is an "
    "invalid record (PL810) and is skipped without being read into memory.",
)
@click.option(
    "--max-messages",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_MESSAGES,
    show_default=True,
    metavar="N",
    help="Most messages of a conversation, every branch counting its own; a conversation "
    "with more is an invalid record (PL811).",
)
@click.option(
    "--max-message-length",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_MESSAGE_LENGTH,
    show_default=True,
    metavar="N",
    help="Longest message, in characters; a conversation with a longer one is an "
    "invalid record (PL812).",
)
@click.option(
    "--allow-errors",
    is_flag=True,
    help="Exit 0 even when some records are invalid (they are still written and counted).",
)
@click.option(
    "--conformance",
    is_flag=True,
    help="Compare each decision with the end marker in the log (see docs/conformance.md).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary on stderr.")
@tenant_option
@max_errors_option
@color_option
@guarded
def check_command(
    policy: str,
    transcripts: tuple[str, ...],
    output: str,
    only: tuple[str, ...],
    output_format: str,
    max_errors: int | None,
    input_format: str = "auto",
    jobs: int | None = None,
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
    allow_errors: bool = False,
    conformance: bool = False,
    quiet: bool = False,
    engine: str = "local",
    scheduler: str | None = None,
    partition_size: int = DEFAULT_PARTITION_SIZE,
    tenant: str | None = None,
    max_messages: int = DEFAULT_MAX_MESSAGES,
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
) -> None:
    """Run POLICY over TRANSCRIPTS (JSONL or JSON arrays, plain or gzip; - for stdin;
    a directory or glob reads its *.jsonl, *.jsonl.gz and *.json files).

    Conversations with message ids and parent ids are split into branches, one
    decision per branch.

    Writes one result per decision or invalid record, in input order whatever
    --jobs is, and a summary on stderr. Exit codes: 0 every record evaluated (or
    --allow-errors), 1 some record invalid or the policy has errors, 2 usage or I/O
    problem, 3 internal error, 130 interrupted.
    """
    if scheduler is not None and engine != "dask":
        raise click.UsageError("--scheduler needs --engine dask")
    if jobs is not None and engine == "dask":
        raise click.UsageError(
            "--jobs is for --engine local; a Dask cluster has the workers it was started with"
        )
    try:
        code = _check(
            policy,
            transcripts,
            output=output,
            only=only,
            output_format=output_format,
            max_errors=max_errors,
            input_format=cast(InputFormat, input_format),
            jobs=jobs or default_jobs(),
            max_record_size=max_record_size,
            allow_errors=allow_errors,
            conformance=conformance,
            quiet=quiet,
            engine=engine,
            scheduler=scheduler,
            partition_size=partition_size,
            tenant=tenant,
            max_messages=max_messages,
            max_message_length=max_message_length,
        )
    except KeyboardInterrupt:
        click.echo(f"{_CLEAR_LINE if _stderr_is_tty() else ''}interrupted", err=True)
        code = EXIT_INTERRUPTED
    raise click.exceptions.Exit(code)


def _check(
    policy: str,
    transcripts: tuple[str, ...],
    *,
    output: str,
    only: tuple[str, ...],
    output_format: str,
    max_errors: int | None,
    input_format: InputFormat,
    jobs: int,
    max_record_size: int,
    allow_errors: bool,
    conformance: bool,
    quiet: bool,
    engine: str = "local",
    scheduler: str | None = None,
    partition_size: int = DEFAULT_PARTITION_SIZE,
    tenant: str | None = None,
    max_messages: int = DEFAULT_MAX_MESSAGES,
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
) -> int:
    loaded = load_policy_or_exit_code(policy, max_errors, tenant=tenant)
    if isinstance(loaded, int):
        return loaded
    try:
        paths = tuple(expand_inputs(transcripts))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if output != "-":
        for path in (policy, *paths):
            if path != STDIN and _same_file(path, output):
                raise click.UsageError(f"--output `{output}` is also an input file")
    settings = Settings(
        input_format=input_format,
        conformance=conformance,
        output_format=output_format,
        only=frozenset(ONLY_CHOICES[name] for name in only),
        max_record_size=max_record_size,
        max_messages=max_messages,
        max_message_length=max_message_length,
    )

    summary = Summary()
    records = 0
    shown_errors = 0
    read_failed = False
    progress = _Progress(paths) if not quiet and _stderr_is_tty() else None

    def say(line: str) -> None:
        if progress is not None:
            progress.interject(line)
        else:
            click.echo(line, err=True)

    try:
        try:
            target = _output(output)
            run_context: contextlib.AbstractContextManager[Iterator[Chunk | ReadFailure]]
            if engine == "dask":
                run_context = open_run(
                    loaded,
                    paths,
                    settings,
                    engine="dask",
                    scheduler=scheduler,
                    partition_size=partition_size,
                )
            else:
                run_context = contextlib.closing(run(loaded, paths, settings, jobs=jobs))
            # A cluster is reached (or its error reported) before any output is written.
            with run_context as chunks, target as stream:
                stream.write(row_format(output_format, conformance=conformance).header())
                for item in chunks:
                    if isinstance(item, ReadFailure):
                        say(f"error: cannot read `{item.path}`: {describe_os_error(item.error)}")
                        read_failed = True
                        continue
                    stream.write(item.text)
                    summary.merge(item.summary)
                    records += item.records
                    for error in item.errors:
                        if max_errors is None or shown_errors < max_errors:
                            say(error)
                            shown_errors += 1
                    if progress is not None:
                        progress.update(item.read, item.records)
        except BrokenPipeError:
            raise
        except OSError as exc:
            where = "stdout" if output == "-" else f"`{output}`"
            say(f"error: cannot write {where}: {describe_os_error(exc)}")
            return EXIT_USAGE
        except WorkerFailed as exc:
            say(f"error: {exc}")
            return EXIT_INTERNAL
        except EngineUnavailable as exc:
            say(f"error: {exc}")
            return EXIT_USAGE
        except EngineError as exc:
            say(f"error: {exc.message}")
            return EXIT_INTERNAL if exc.internal else EXIT_USAGE
    finally:
        if progress is not None:
            progress.close()

    hidden = summary.errors - shown_errors
    if hidden:
        click.echo(f"... and {hidden:,} more invalid records (all are in the output)", err=True)
    if records != summary.records or not summary.balanced:
        # A bug: say so rather than report a run that lost records.
        click.echo(
            f"internal error: {records:,} records read but {summary.records:,} accounted for"
            f" ({summary.evaluated:,} evaluated + {summary.errors:,} invalid)",
            err=True,
        )
        return EXIT_INTERNAL
    if not quiet:
        click.echo(summary.table(conformance=conformance), err=True, nl=False)
        click.echo(_accounting(summary), err=True)
    if read_failed:
        return EXIT_USAGE
    if summary.errors and not allow_errors:
        return EXIT_FINDINGS
    return EXIT_OK


def _accounting(summary: Summary) -> str:
    records = "record" if summary.records == 1 else "records"
    return (
        f"all {summary.records:,} {records} accounted for: {summary.evaluated:,} evaluated"
        f" ({summary.decisions:,} decisions) + {summary.errors:,} invalid"
    )
