"""samples/deployed.jsonl shows every kind of conformance finding the README promises."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from policylang.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_the_deployed_sample() -> None:
    result = CliRunner().invoke(
        main,
        [
            "check",
            str(ROOT / "policies" / "default.policy"),
            str(ROOT / "samples" / "deployed.jsonl"),
            "--conformance",
            "--jobs",
            "1",
        ],
    )
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    found = {row["conversation_id"]: row["conformance"] for row in rows}
    assert {name: value["status"] for name, value in found.items()} == {
        "deployed-01-ended-as-the-policy-would": "agree",
        "deployed-02-ended-a-heated-debate": "unjustified_end",
        "deployed-03-kept-going-after-pushes": "missed_end",
        "deployed-04-accepted-messages-after-ending": "agree",
    }
    assert found["deployed-04-accepted-messages-after-ending"]["post_termination_messages"] == [2]
    assert "took 1 user message after its own end" in result.stderr
