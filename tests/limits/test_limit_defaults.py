"""The default limits are what docs/cli.md (Limits) and docs/diagnostics.md say they are."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from policylang import builder, checker, compose, transcripts
from policylang.batch import Settings
from policylang.cli.check import check_command
from policylang.fastread import decode_native
from policylang.limits import (
    DEFAULT_MAX_DECLARATIONS,
    DEFAULT_MAX_DETECTORS,
    DEFAULT_MAX_KEYWORD_TERMS,
    DEFAULT_MAX_MESSAGE_LENGTH,
    DEFAULT_MAX_MESSAGES,
    DEFAULT_MAX_PATTERN_LENGTH,
    DEFAULT_MAX_POLICY_SIZE,
    DEFAULT_MAX_RECORD_SIZE,
    MAX_JSON_DEPTH,
    POLICY_LIMIT_ENV,
    MessageLimits,
    PolicyLimits,
    parse_size,
)

REPO = Path(__file__).resolve().parents[2]
CLI_DOCS = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
DIAGNOSTICS_DOCS = (REPO / "docs" / "diagnostics.md").read_text(encoding="utf-8")


def limits_table() -> dict[str, tuple[str, str, str]]:
    """The rows of the Limits table in docs/cli.md: first cell -> (default, set with, beyond)."""
    section = CLI_DOCS.split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str, str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) == 4 and cells[0] not in {"limit", "---"}:
            rows[cells[0]] = (cells[1], cells[2], cells[3])
    return rows


def number(text: str) -> int:
    """``10,000`` -> 10000, ``4 MiB`` -> 4194304, ``64 levels`` -> 64."""
    match = re.match(r"^([\d,]+)(?: (KiB|MiB|GiB))?", text)
    assert match, text
    value = int(match.group(1).replace(",", ""))
    return parse_size(f"{value}{match.group(2)[0]}") if match.group(2) else value


ROWS = limits_table()


def row(prefix: str) -> tuple[str, str, str]:
    [found] = [cells for name, cells in ROWS.items() if name.startswith(prefix)]
    return found


@pytest.mark.parametrize(
    ("prefix", "default", "setting"),
    [
        ("size of a policy file", DEFAULT_MAX_POLICY_SIZE, "`POLICYLANG_MAX_POLICY_SIZE`"),
        ("nesting of values", builder.MAX_NESTING, "fixed"),
        ("chain of `extends`", compose._MAX_DEPTH, "fixed"),
        ("declarations", DEFAULT_MAX_DECLARATIONS, "`POLICYLANG_MAX_DECLARATIONS`"),
        ("detectors", DEFAULT_MAX_DETECTORS, "`POLICYLANG_MAX_DETECTORS`"),
        ("keyword terms", DEFAULT_MAX_KEYWORD_TERMS, "`POLICYLANG_MAX_KEYWORD_TERMS`"),
        ("characters of a pattern", DEFAULT_MAX_PATTERN_LENGTH, "`POLICYLANG_MAX_PATTERN_LENGTH`"),
        ("text a pattern can match", checker.MAX_MATCH_WIDTH, "fixed"),
        ("size of a JSONL transcript record", DEFAULT_MAX_RECORD_SIZE, "`check --max-record-size`"),
        ("nesting of arrays and objects", MAX_JSON_DEPTH, "fixed"),
        ("messages of a conversation", DEFAULT_MAX_MESSAGES, "`check --max-messages`"),
        ("characters of a message", DEFAULT_MAX_MESSAGE_LENGTH, "`check --max-message-length`"),
    ],
)
def test_the_limits_table_gives_the_defaults(prefix: str, default: int, setting: str) -> None:
    documented, set_with, _ = row(prefix)
    assert number(documented) == default
    assert set_with.startswith(setting)


def test_the_table_has_no_other_rows() -> None:
    assert len(ROWS) == 12


def test_the_library_defaults_are_the_constants() -> None:
    assert PolicyLimits() == PolicyLimits(
        max_policy_size=DEFAULT_MAX_POLICY_SIZE,
        max_declarations=DEFAULT_MAX_DECLARATIONS,
        max_detectors=DEFAULT_MAX_DETECTORS,
        max_keyword_terms=DEFAULT_MAX_KEYWORD_TERMS,
        max_pattern_length=DEFAULT_MAX_PATTERN_LENGTH,
    )
    assert PolicyLimits.from_environment({}) == PolicyLimits()
    assert MessageLimits() == MessageLimits(DEFAULT_MAX_MESSAGES, DEFAULT_MAX_MESSAGE_LENGTH)
    settings = Settings()
    assert settings.max_record_size == DEFAULT_MAX_RECORD_SIZE
    assert settings.limits == MessageLimits()
    # Every reader defaults to the same message limits.
    for reader in (
        transcripts.iter_records,
        transcripts.iter_lines,
        transcripts.parse_line,
        decode_native,
    ):
        assert inspect.signature(reader).parameters["limits"].default == MessageLimits()
    # The readers report, diff, explain and test use keep records to the same size.
    for reader in (transcripts.iter_records, transcripts.iter_lines):
        default = inspect.signature(reader).parameters["max_record_size"].default
        assert default == DEFAULT_MAX_RECORD_SIZE


def test_the_documented_values_are_the_library_defaults() -> None:
    assert (DEFAULT_MAX_POLICY_SIZE, DEFAULT_MAX_RECORD_SIZE) == (4 << 20, 64 << 20)
    assert (DEFAULT_MAX_DECLARATIONS, DEFAULT_MAX_DETECTORS) == (10_000, 10_000)
    assert (DEFAULT_MAX_KEYWORD_TERMS, DEFAULT_MAX_PATTERN_LENGTH) == (100_000, 4_096)
    assert (DEFAULT_MAX_MESSAGES, DEFAULT_MAX_MESSAGE_LENGTH) == (100_000, 1_000_000)


def test_check_options_default_to_the_limits() -> None:
    defaults = {
        param.name: param.default for param in check_command.params if param.name is not None
    }
    assert defaults["max_messages"] == DEFAULT_MAX_MESSAGES
    assert defaults["max_message_length"] == DEFAULT_MAX_MESSAGE_LENGTH
    assert parse_size(str(defaults["max_record_size"])) == DEFAULT_MAX_RECORD_SIZE
    # And the option table of docs/cli.md says so.
    assert (
        "| `--max-messages N` | the most messages of a conversation"
        f" (default `{DEFAULT_MAX_MESSAGES}`)" in CLI_DOCS
    )
    assert (
        "| `--max-message-length N` | the longest message, in characters (code points) of"
        f" its content (default `{DEFAULT_MAX_MESSAGE_LENGTH}`)" in CLI_DOCS
    )
    assert "[--max-messages N]" in CLI_DOCS and "[--max-message-length N]" in CLI_DOCS


def test_the_diagnostics_page_gives_the_same_defaults_and_variables() -> None:
    pl316 = DIAGNOSTICS_DOCS.split("## PL316 ", 1)[1].split("\n## ", 1)[0]
    for name, variable in POLICY_LIMIT_ENV.items():
        if name == "max_policy_size":
            continue
        default = getattr(PolicyLimits(), name)
        assert re.search(rf"\| {default:,} \| `{variable}` \|", pl316), (name, variable)
    pl003 = DIAGNOSTICS_DOCS.split("## PL003 ", 1)[1].split("\n## ", 1)[0]
    assert "4 MiB" in pl003 and POLICY_LIMIT_ENV["max_policy_size"] in pl003
    assert f"({DEFAULT_MAX_MESSAGES:,} unless set)" in DIAGNOSTICS_DOCS.split("## PL811 ")[1]
    assert f"({DEFAULT_MAX_MESSAGE_LENGTH:,} unless set)" in DIAGNOSTICS_DOCS.split("## PL812 ")[1]
    pl106 = DIAGNOSTICS_DOCS.split("## PL106 ", 1)[1].split("\n## ", 1)[0]
    assert f"more than {builder.MAX_NESTING} levels deep" in pl106
