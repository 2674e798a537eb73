"""Shared CLI plumbing: exit codes, colour, option decorators, reading sources, rendering.

Commands stay thin: they parse arguments, call the library, hand diagnostics to
:func:`report` and return one of the ``EXIT_*`` codes. :func:`guarded` turns any
unexpected exception into a one-line internal-error message and exit code 3, so a
Python traceback never reaches the user.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import IO, TYPE_CHECKING, Final, Literal, ParamSpec, TypeVar, cast

import click

from policylang.diagnostics import Diagnostic, DiagnosticSink, Severity
from policylang.formats import InputFormat
from policylang.source import SourceFile
from policylang.transcripts import RecordResult, iter_records

if TYPE_CHECKING:
    from policylang.runtime import Policy

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "ISSUE_TRACKER",
    "ColorMode",
    "Settings",
    "color_option",
    "complete_sources",
    "describe_os_error",
    "exit_code_for",
    "fail",
    "format_option",
    "guarded",
    "load_policy_or_exit_code",
    "max_errors_option",
    "read_source",
    "report",
    "tenant_option",
    "tool_version",
    "use_color",
]

EXIT_OK: Final = 0
"""Clean: no findings."""
EXIT_FINDINGS: Final = 1
"""Findings: errors (or warnings with ``--warnings-as-errors``), invalid records, drift."""
EXIT_USAGE: Final = 2
"""Usage or I/O problem: bad arguments, a file that cannot be read or written."""
EXIT_INTERNAL: Final = 3
"""Internal error: a bug in policylang."""

ISSUE_TRACKER: Final = "https://github.com/policylang/policylang/issues"
"""Where internal errors should be reported, unless the installed metadata names another."""

INTERNAL_ERROR_CODE: Final = "PL900"

DEBUG_ENV: Final = "POLICYLANG_DEBUG"
"""Set to a non-empty value to print the traceback of an internal error as well."""

ColorMode = Literal["auto", "always", "never"]
COLOR_CHOICES: Final = ("auto", "always", "never")

_P = ParamSpec("_P")
_R = TypeVar("_R")
_F = TypeVar("_F", bound=Callable[..., object])


# ---------------------------------------------------------------- version and settings


def tool_version() -> str:
    """The installed policylang version, e.g. ``0.1.0``."""
    import policylang

    version = getattr(policylang, "__version__", None)
    if isinstance(version, str) and version:
        return version
    try:
        return metadata.version("policylang")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def issue_tracker() -> str:
    """The bug-report address: the package metadata's issue URL if it has one."""
    try:
        urls: list[str] = metadata.metadata("policylang").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() in {"issues", "bug tracker", "bugs", "tracker"} and url.strip():
            return url.strip()
    return ISSUE_TRACKER


@dataclass(slots=True)
class Settings:
    """Options of the ``policylang`` group that every command sees (``ctx.obj``)."""

    color: ColorMode = "auto"


def settings() -> Settings:
    """The current invocation's settings (defaults when a command runs on its own)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return Settings()
    return ctx.ensure_object(Settings)


def use_color(mode: ColorMode, stream: IO[str]) -> bool:
    """Whether to colour output on ``stream``.

    ``always`` and ``never`` are obeyed as given. ``auto`` colours only a terminal,
    and only when ``NO_COLOR`` is unset or empty (https://no-color.org).
    """
    if mode == "always":
        return True
    if mode == "never":
        return False
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------- options


def _set_color(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Settings).color = cast(ColorMode, value)


def color_option(func: _F) -> _F:
    """``--color auto|always|never`` on a command; overrides the global option."""
    return click.option(
        "--color",
        type=click.Choice(COLOR_CHOICES),
        default=None,
        expose_value=False,
        is_eager=True,
        callback=_set_color,
        help="When to colour diagnostics (default: the global --color, else auto).",
    )(func)


def format_option(choices: Sequence[str], default: str, help: str) -> Callable[[_F], _F]:
    """``--format`` with the given choices."""

    def decorate(func: _F) -> _F:
        return click.option(
            "--format",
            "output_format",
            type=click.Choice(tuple(choices)),
            default=default,
            show_default=True,
            help=help,
        )(func)

    return decorate


def max_errors_option(func: _F) -> _F:
    """``--max-errors N``: show at most N diagnostics, then ``... and K more``."""
    return click.option(
        "--max-errors",
        type=click.IntRange(min=0),
        default=None,
        metavar="N",
        help="Show at most N diagnostics (human and short formats); the rest are counted.",
    )(func)


def tenant_option(func: _F) -> _F:
    """``--tenant FILE``: apply a tenant file's parameter settings to the policy."""
    return click.option(
        "--tenant",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        metavar="FILE",
        help="Apply this tenant file's settings to the policy's tunable parameters.",
    )(func)


# ---------------------------------------------------------------- errors and exit codes


def stderr() -> IO[str]:
    """The stream human output goes to."""
    return sys.stderr


def fail(message: str) -> None:
    """Print ``error: message`` on stderr (the caller picks the exit code)."""
    click.echo(f"error: {message}", err=True)


def describe_os_error(exc: OSError) -> str:
    """``No such file or directory`` and the like, without Python's decoration."""
    return exc.strerror or str(exc) or type(exc).__name__


def exit_code_for(diagnostics: Sequence[Diagnostic], *, warnings_as_errors: bool = False) -> int:
    """The exit code diagnostics call for: 3 for an internal error, 1 for findings, else 0."""
    if any(d.code == INTERNAL_ERROR_CODE for d in diagnostics):
        return EXIT_INTERNAL
    if any(d.severity is Severity.ERROR for d in diagnostics):
        return EXIT_FINDINGS
    if warnings_as_errors and any(d.severity is Severity.WARNING for d in diagnostics):
        return EXIT_FINDINGS
    return EXIT_OK


def _internal_error(exc: BaseException) -> None:
    detail = str(exc).strip()
    what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    click.echo(
        f"internal error: {what}\n"
        f"this is a bug in policylang {tool_version()}; please report this at "
        f"{issue_tracker()} (set {DEBUG_ENV}=1 to include the traceback)",
        err=True,
    )
    if os.environ.get(DEBUG_ENV):
        click.echo("".join(traceback.format_exception(exc)), err=True, nl=False)


def _silence_stdout() -> None:
    # The reader went away (`policylang check ... | head`): further writes, including
    # the interpreter's final flush, would raise again, so point stdout at devnull.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        # io.UnsupportedOperation (no descriptor, as under test runners) is both.
        pass


def guarded(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a command body so that no Python traceback reaches the user.

    Click's own exits and usage errors pass through. A closed output pipe ends the
    command quietly with exit code 2. Anything else is a bug: it is reported as an
    internal error (with a traceback only when ``POLICYLANG_DEBUG`` is set) and
    the command exits with code 3. A malformed ``POLICYLANG_MAX_*`` limit variable
    is a usage error, reported before the command starts.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        from policylang.limits import PolicyLimits

        try:
            PolicyLimits.from_environment()
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            _silence_stdout()
            raise click.exceptions.Exit(EXIT_USAGE) from None
        except Exception as exc:
            _internal_error(exc)
            raise click.exceptions.Exit(EXIT_INTERNAL) from None

    return wrapper


# ---------------------------------------------------------------- sources and rendering


def read_source(path: str) -> tuple[SourceFile, list[Diagnostic]]:
    """Read and decode a policy file; decoding problems come back as diagnostics.

    A file over the size limit is not read: it comes back empty with a PL003 error
    (see :meth:`SourceFile.read`). Raises ``OSError`` when the file cannot be read.
    """
    return SourceFile.read(path)


def complete_sources(
    diagnostics: Sequence[Diagnostic], sources: Mapping[str, SourceFile]
) -> dict[str, SourceFile]:
    """Return ``sources`` plus every file the diagnostics point into that it lacks.

    A diagnostic's own file and the files its secondary labels name (a base policy,
    say) are read from disk with :func:`read_source`, so that their snippets can be
    shown. A file that is not a regular file or cannot be read is left out: it is
    rendered without a snippet. ``sources`` itself is not changed.
    """
    complete = dict(sources)
    for diagnostic in diagnostics:
        for path in diagnostic.paths:
            if path in complete or not os.path.isfile(path):
                continue
            with contextlib.suppress(OSError):
                complete[path] = read_source(path)[0]
    return complete


def report(
    diagnostics: Sequence[Diagnostic],
    sources: Mapping[str, SourceFile],
    *,
    output_format: str = "human",
    max_errors: int | None = None,
) -> None:
    """Print diagnostics: human and short on stderr, json on stdout.

    ``diagnostics`` should already be sorted and deduplicated. Files they point into
    that are not in ``sources`` are read from disk (see :func:`complete_sources`).
    Human and short output print nothing when there are none; json always prints one
    document.
    """
    from policylang.render import render_human, render_json, render_short

    sources = complete_sources(diagnostics, sources)
    if output_format == "json":
        click.echo(render_json(diagnostics, sources, tool_version=tool_version()), nl=False)
        return
    if not diagnostics:
        return
    if output_format == "short":
        shown = diagnostics if max_errors is None else diagnostics[:max_errors]
        text = render_short(shown, sources)
        hidden = len(diagnostics) - len(shown)
        if hidden:
            text += f"... and {hidden} more\n"
        click.echo(text, err=True, nl=False)
        return
    color = use_color(settings().color, stderr())
    text = render_human(diagnostics, sources, color=color, max_errors=max_errors)
    # color= stops click from stripping the ANSI codes --color always asked for.
    click.echo(text, err=True, nl=False, color=color)


def load_policy_or_exit_code(
    path: str, max_errors: int | None, *, tenant: str | None = None
) -> Policy | int:
    """Compile the policy at ``path`` in memory, printing its diagnostics on stderr.

    ``tenant`` is a tenant file to apply. Returns the runtime policy, or the exit code
    to stop with: 2 when the file cannot be read, 1 when the policy has errors (3 for
    an internal error).
    """
    from policylang.cache import load_cached_policy, store_policy_module
    from policylang.limits import PolicyLimits

    limits = PolicyLimits.from_environment()
    try:
        with open(path, "rb") as handle:
            # Bounded: a larger file is refused (PL003) by the compiler's own read.
            source = handle.read(limits.max_policy_size + 1)
    except OSError as exc:
        fail(f"cannot read `{path}`: {describe_os_error(exc)}")
        return EXIT_USAGE
    # The cache is keyed by the policy's own bytes, so a policy that names other
    # files (a base, an import) or takes a tenant is compiled every time; so is one
    # read under limits other than the defaults, which the cached result did not see.
    cacheable = (
        tenant is None
        and len(source) <= limits.max_policy_size
        and not PolicyLimits.environment_set()
        and not _names_other_files(source)
    )
    cached = load_cached_policy(source) if cacheable else None
    if cached is not None:
        return cached

    from policylang.compiler import load_policy_and_code

    sink = DiagnosticSink()
    try:
        policy, module = load_policy_and_code(path, sink, tenant=tenant)
    except OSError as exc:
        fail(f"cannot read `{path}`: {describe_os_error(exc)}")
        return EXIT_USAGE
    diagnostics = sink.sorted()
    if policy is not None and not diagnostics and cacheable:
        # Only a policy without any diagnostic is kept: warnings are shown every run.
        store_policy_module(source, module)
    if diagnostics:
        # report() reads the policy (and any file a label points into) for snippets.
        report(diagnostics, {}, output_format="human", max_errors=max_errors)
    code = exit_code_for(diagnostics)
    if code != EXIT_OK:
        return code
    if policy is None:
        raise RuntimeError("loading the policy returned no policy and reported no error")
    return policy


_OTHER_FILES = re.compile(rb"\bextends\s*:|^\s*import\b", re.MULTILINE)


def _names_other_files(source: bytes) -> bool:
    """Whether policy text may depend on other files (an `extends:` or an `import`)."""
    return _OTHER_FILES.search(source) is not None


class ReadFailed(Exception):
    """An input file could not be read (as opposed to an output that could not be written)."""

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(path)
        self.path = path
        self.error = error


def read_records(path: str, input_format: InputFormat = "auto") -> Iterator[RecordResult]:
    """Stream a transcript file's records; a read failure raises :class:`ReadFailed`."""
    # Wrap read-side OSErrors so they cannot be confused with write failures.
    try:
        records = iter_records(path) if input_format == "auto" else iter_records(path, input_format)
    except OSError as exc:
        raise ReadFailed(path, exc) from exc
    while True:
        try:
            result = next(records)
        except StopIteration:
            return
        except OSError as exc:
            raise ReadFailed(path, exc) from exc
        yield result


# ---------------------------------------------------------------- output files


def new_file_mode(path: str) -> int:
    """The mode a replacement of ``path`` gets: the existing file's, or what ``open``
    would give a new one (``0666`` minus the umask), not ``mkstemp``'s private ``0600``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def open_output(path: str) -> Iterator[IO[str]]:
    """A UTF-8 text stream (``\\n`` line ends) whose content replaces ``path`` atomically.

    What is written goes to a temporary file in the same directory, which is flushed
    to disk and renamed over ``path`` (keeping its permissions) only when the block
    ends normally; on any failure or interrupt it is removed and ``path`` keeps its
    old content. A symbolic link is followed (the file it names is replaced), and a
    path that is not a regular file (``/dev/null``, a named pipe) is written to
    directly, never replaced by a file. Raises ``OSError``.
    """
    target = os.path.realpath(path)
    try:
        regular = stat.S_ISREG(os.stat(target).st_mode)
    except FileNotFoundError:
        regular = True  # a new file
    if not regular:
        with open(target, "w", encoding="utf-8", newline="") as stream:
            yield stream
        return
    directory = os.path.dirname(target)
    fd, temporary = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, new_file_mode(target))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
