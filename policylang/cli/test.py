"""``policylang test``: run the test cases of policies, or record a new case from a transcript.

Each policy is compiled once. Results go to stderr (``--format human``) or stdout
(``--format json``); the last line on stderr is always the summary ``N passed, N failed``.
Exit codes: 0 every case passed, 1 a case failed (or a policy has errors, or coverage
is below ``--min-coverage``), 2 usage, I/O or test-file errors, 3 internal error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Final

import click

from policylang.cli._common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    color_option,
    describe_os_error,
    fail,
    format_option,
    guarded,
    load_policy_or_exit_code,
    tool_version,
)
from policylang.cli.compile import write_atomic
from policylang.runtime import Message, Policy
from policylang.testing import (
    CASES_SUFFIX,
    CaseFile,
    CaseFileError,
    PolicyCoverage,
    SuiteResult,
    TranscriptCache,
    case_text,
    cases_path_for,
    check_names,
    discover,
    find_record,
    not_run,
    parse_case_file,
    plan_append,
    read_policy_key,
    render_coverage,
    render_human,
    render_json,
    render_junit,
    run_case,
    summary_line,
)
from policylang.transcripts import RecordError

__all__ = ["DEFAULT_PATH", "DEFAULT_POLICY", "testing_command"]

DEFAULT_PATH: Final = "policies"
"""Where tests are looked for when no PATHS are given."""

DEFAULT_POLICY: Final = os.path.join("policies", "default.policy")
"""The policy ``--record`` uses when neither ``--policy`` nor ``--to`` says otherwise."""

_RECORD_ONLY: Final = ("conversation_id", "policy", "to", "name")
_RUN_ONLY: Final = ("run_pattern", "junit", "coverage", "min_coverage")


@dataclass(slots=True)
class _Run:
    """The state of one run: the suite, the loaded policies and the exit code so far."""

    suite: SuiteResult = field(default_factory=SuiteResult)
    policies: dict[tuple[str, str | None], Policy | int] = field(default_factory=dict)
    coverage: dict[str, PolicyCoverage] = field(default_factory=dict)
    code: int = EXIT_OK

    def raise_to(self, code: int) -> None:
        self.code = max(self.code, code)

    def policy(self, path: str, tenant: str | None = None) -> Policy | int:
        key = (os.path.realpath(path), None if tenant is None else os.path.realpath(tenant))
        if key not in self.policies:
            self.policies[key] = load_policy_or_exit_code(path, None, tenant=tenant)
        return self.policies[key]


def _option_names(ctx: click.Context, names: tuple[str, ...]) -> list[str]:
    given = []
    for param in ctx.command.params:
        if param.name in names and ctx.get_parameter_source(param.name) is not (
            click.core.ParameterSource.DEFAULT
        ):
            given.append(param.opts[0])
    return given


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option(
    "--run",
    "run_pattern",
    metavar="REGEX",
    help="Run only the cases whose name matches REGEX (re.search).",
)
@format_option(
    ("human", "json"),
    "human",
    "human: results and summary on stderr; json: one document on stdout.",
)
@click.option(
    "--junit",
    metavar="FILE",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the results as JUnit XML to FILE.",
)
@click.option("--coverage", is_flag=True, help="Report what the cases exercised in each policy.")
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    metavar="P",
    help="Exit 1 when a policy's overall coverage is below P percent.",
)
@click.option("-v", "--verbose", is_flag=True, help="List passing cases too (and covered items).")
@click.option(
    "--record",
    is_flag=True,
    help="Record a case: PATHS are transcript files; needs --id.",
)
@click.option("--id", "conversation_id", metavar="ID", help="With --record: the conversation id.")
@click.option(
    "--policy",
    metavar="POLICY",
    type=click.Path(exists=True, dir_okay=False),
    help="With --record: the policy to evaluate (default: the test file's, else "
    f"{DEFAULT_POLICY}).",
)
@click.option(
    "--to",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="With --record: the test file to append to (default: POLICY's NAME.cases.yaml).",
)
@click.option("--name", metavar="NAME", help="With --record: the case name (default: recorded ID).")
@color_option
@click.pass_context
@guarded
def testing_command(
    ctx: click.Context,
    paths: tuple[str, ...],
    run_pattern: str | None,
    output_format: str,
    junit: str | None,
    coverage: bool,
    min_coverage: float | None,
    verbose: bool,
    record: bool,
    conversation_id: str | None,
    policy: str | None,
    to: str | None,
    name: str | None,
) -> None:
    """Run the test cases of policies (PATHS: .policy files, .cases.yaml files or
    directories; default policies/).

    \b
    With --record, append a case to a policy's test file instead:
      policylang test --record TRANSCRIPTS... --id ID [--policy POLICY] [--to FILE] [--name NAME]

    Exit codes: 0 every case passed, 1 a case failed (or coverage is below
    --min-coverage), 2 usage, I/O or test-file errors, 3 internal error.
    """
    if record:
        misplaced = _option_names(ctx, _RUN_ONLY)
        if misplaced:
            raise click.UsageError(f"{misplaced[0]} cannot be used with --record")
        if not paths:
            raise click.UsageError("--record needs the transcript files to read")
        if conversation_id is None:
            raise click.UsageError("--record needs --id ID")
        raise click.exceptions.Exit(_record(paths, conversation_id, policy, to, name))
    misplaced = _option_names(ctx, _RECORD_ONLY)
    if misplaced:
        raise click.UsageError(f"{misplaced[0]} is only used with --record")
    pattern = None
    if run_pattern is not None:
        try:
            pattern = re.compile(run_pattern)
        except re.error as exc:
            raise click.BadParameter(
                f"not a regular expression: {exc}", param_hint="--run"
            ) from None
    if not paths:
        if not os.path.isdir(DEFAULT_PATH):
            raise click.UsageError(f"no PATHS given and no `{DEFAULT_PATH}/` directory here")
        paths = (DEFAULT_PATH,)
    run = _run_tests(paths, pattern)
    _finish(run, output_format, junit, coverage, min_coverage, verbose, run_pattern)


# ---------------------------------------------------------------- running


def _run_tests(paths: tuple[str, ...], pattern: re.Pattern[str] | None) -> _Run:
    run = _Run()
    found = discover(paths)
    for problem in found.problems:
        fail(problem)
        run.raise_to(EXIT_USAGE)
    if not found.case_files and not found.problems:
        fail("no test files found (a policy NAME.policy is tested by NAME.cases.yaml beside it)")
        run.raise_to(EXIT_USAGE)
    transcripts = TranscriptCache()
    tested: set[str] = set()
    for path in found.case_files:
        try:
            case_file, errors = parse_case_file(path, transcripts)
        except OSError as exc:
            fail(f"cannot read `{path}`: {describe_os_error(exc)}")
            run.raise_to(EXIT_USAGE)
            continue
        if case_file is None:
            run.suite.errors.extend(errors)
            run.raise_to(EXIT_USAGE)
            continue
        tested.add(os.path.realpath(case_file.policy_path))
        _run_file(run, case_file, pattern)
    for policy_path in found.policies:
        if os.path.realpath(policy_path) not in tested and not found.problems:
            click.echo(
                f"note: `{policy_path}` has no test file "
                f"(`{os.path.basename(cases_path_for(policy_path))}` beside it)",
                err=True,
            )
    return run


def _run_file(run: _Run, case_file: CaseFile, pattern: re.Pattern[str] | None) -> None:
    cases = [case for case in case_file.cases if pattern is None or pattern.search(case.name)]
    loaded = run.policy(case_file.policy_path, case_file.tenant_path)
    if isinstance(loaded, int):
        # The policy's own diagnostics were printed when it was loaded.
        run.raise_to(loaded)
        reason = (
            "the policy cannot be read"
            if loaded == EXIT_USAGE
            else f"the policy `{case_file.policy_path}` has errors"
        )
        run.suite.results.extend(not_run(case, case_file, reason) for case in cases)
        return
    errors = check_names(case_file, loaded)
    if errors:
        run.suite.errors.extend(errors)
        run.raise_to(EXIT_USAGE)
        return
    run.suite.files.append(case_file)
    key = os.path.realpath(case_file.policy_path)
    coverage = run.coverage.get(key)
    if coverage is None:
        coverage = run.coverage[key] = PolicyCoverage(loaded, case_file.policy_path)
        run.suite.coverage.append(coverage)
    for case in cases:
        result = run_case(loaded, case, case_file)
        run.suite.results.append(result)
        coverage.add(result)


def _finish(
    run: _Run,
    output_format: str,
    junit: str | None,
    coverage: bool,
    min_coverage: float | None,
    verbose: bool,
    run_pattern: str | None,
) -> None:
    suite = run.suite
    if run_pattern is not None and not suite.results and not suite.errors:
        fail(f"no test case matches --run `{run_pattern}`")
        run.raise_to(EXIT_USAGE)
    if suite.failed:
        run.raise_to(EXIT_FINDINGS)
    below = [c for c in suite.coverage if min_coverage is not None and c.percent < min_coverage]
    if below:
        run.raise_to(EXIT_FINDINGS)
    if output_format == "json":
        click.echo(
            render_json(
                suite,
                tool_version=tool_version(),
                verbose=verbose,
                coverage=coverage or min_coverage is not None,
            ),
            nl=False,
        )
    else:
        click.echo(render_human(suite, verbose=verbose), err=True, nl=False)
        if coverage:
            click.echo(render_coverage(suite.coverage, verbose=verbose), err=True, nl=False)
    if junit is not None:
        try:
            write_atomic(junit, render_junit(suite))
        except OSError as exc:
            fail(f"cannot write `{junit}`: {describe_os_error(exc)}")
            run.raise_to(EXIT_USAGE)
    for item in below:
        fail(
            f"coverage of `{item.path}` is {item.percent:.1f}%, "
            f"below --min-coverage {min_coverage:g}%"
        )
    click.echo(summary_line(suite), err=True)
    raise click.exceptions.Exit(run.code)


# ---------------------------------------------------------------- recording


def _located(error: CaseFileError) -> int:
    click.echo(error.located(), err=True)
    return EXIT_USAGE


def _record(
    transcripts: tuple[str, ...],
    conversation_id: str,
    policy: str | None,
    to: str | None,
    name: str | None,
) -> int:
    target, policy_path, problem = _record_target(policy, to)
    if problem is not None:
        raise click.UsageError(problem)
    assert target is not None and policy_path is not None
    try:
        found = find_record(transcripts, conversation_id)
    except OSError as exc:
        fail(f"cannot read a transcript: {describe_os_error(exc)}")
        return EXIT_USAGE
    if found is None:
        fail(f"no conversation `{conversation_id}` in {', '.join(transcripts)}")
        return EXIT_USAGE
    if isinstance(found, RecordError):
        click.echo(found.located(), err=True)
        return EXIT_USAGE
    loaded = load_policy_or_exit_code(policy_path, None)
    if isinstance(loaded, int):
        return loaded
    case_name = name if name is not None else f"recorded {conversation_id}"
    if os.path.exists(target):
        try:
            existing, errors = parse_case_file(target)
        except OSError as exc:
            fail(f"cannot read `{target}`: {describe_os_error(exc)}")
            return EXIT_USAGE
        if existing is None:
            for error in errors:
                click.echo(error.located(), err=True)
            fail(f"`{target}` has errors; fix them before recording into it")
            return EXIT_USAGE
        if any(case.name == case_name for case in existing.cases):
            fail(f"`{target}` already has a case named `{case_name}`; choose another with --name")
            return EXIT_USAGE
    messages = found.conversation.messages
    decision = loaded.evaluate(messages, conversation_id)
    try:
        plan = plan_append(target, policy_path)
    except OSError as exc:
        fail(f"cannot read `{target}`: {describe_os_error(exc)}")
        return EXIT_USAGE
    if isinstance(plan, CaseFileError):
        return _located(plan)
    block = case_text(
        case_name,
        [Message(m.role, m.content, dict(m.metadata)) for m in messages],
        decision,
        indent=plan.indent,
        comment=f"recorded from {found.file}:{found.line} with {loaded.name} {loaded.version}",
    )
    text, line = plan.apply(block)
    try:
        write_atomic(target, text)
    except OSError as exc:
        fail(f"cannot write `{target}`: {describe_os_error(exc)}")
        return EXIT_USAGE
    click.echo(f"added case `{case_name}` to {target}:{line}:", err=True)
    click.echo(block, err=True, nl=False)
    return _verify_recorded(target, case_name)


def _verify_recorded(target: str, case_name: str) -> int:
    # The case was written from the current decision, so it must load and pass.
    case_file, errors = parse_case_file(target)
    if case_file is None:
        for error in errors:
            click.echo(error.located(), err=True)
        return EXIT_USAGE
    loaded = load_policy_or_exit_code(case_file.policy_path, None, tenant=case_file.tenant_path)
    if isinstance(loaded, int):
        return loaded
    for case in case_file.cases:
        if case.name == case_name:
            result = run_case(loaded, case, case_file)
            if not result.passed:
                fail(f"the recorded case does not pass: {result.headline()}")
                return EXIT_FINDINGS
    return EXIT_OK


def _record_target(policy: str | None, to: str | None) -> tuple[str | None, str | None, str | None]:
    """The test file to append to and the policy to evaluate, or a usage problem."""
    if to is not None and os.path.isfile(to):
        try:
            with open(to, encoding="utf-8", errors="replace") as handle:
                written, _ = read_policy_key(to, handle.read())
        except OSError as exc:
            return None, None, f"cannot read `{to}`: {describe_os_error(exc)}"
        if written is not None:
            own = written if os.path.isabs(written) else os.path.join(os.path.dirname(to), written)
        elif to.endswith(CASES_SUFFIX):
            own = to[: -len(CASES_SUFFIX)] + ".policy"
        else:
            own = None
        if own is not None:
            own = os.path.normpath(own)
            if policy is not None and not _same_file(policy, own):
                return None, None, f"`{to}` tests `{own}`, not `{policy}`"
            if policy is None:
                policy = own
    if policy is None and to is not None and to.endswith(CASES_SUFFIX):
        sibling = to[: -len(CASES_SUFFIX)] + ".policy"
        if os.path.isfile(sibling):
            policy = sibling
    if policy is None:
        if not os.path.isfile(DEFAULT_POLICY):
            return None, None, f"--record needs --policy (there is no {DEFAULT_POLICY} here)"
        policy = DEFAULT_POLICY
    target = to if to is not None else cases_path_for(policy)
    return target, policy, None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
