"""Coverage of a composed policy: detectors in different files at the same position."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from policylang.cli import main

BASE = """policy base {
  version: "1"
}
category harm {
  title: "Harm"
  severity: critical
  detect: keywords ["alpha"]
}
signal risk {
  detect: keywords ["hurt myself"]
}
rule end_on_risk_words {
  when: risk
  action: warn
  reason: "x"
}
"""

CHILD = """policy child { version: "1" extends: "base.policy" }

category other {
  title: "Other"
  severity: critical
  # the same line and column as the base's detector
  detect: keywords ["beta"]
}
"""

CASES = """cases:
  - name: beta only
    conversation:
      - user: beta
    expect: {outcome: continue}
"""


def test_a_detector_is_not_merged_with_one_at_the_same_place_in_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "base.policy").write_text(BASE, encoding="utf-8")
    (tmp_path / "child.policy").write_text(CHILD, encoding="utf-8")
    (tmp_path / "child.cases.yaml").write_text(CASES, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["test", "child.cases.yaml", "--coverage"])
    output = result.stdout + result.stderr
    assert result.exit_code == 0, output
    assert "detectors      1 of 3" in output
    assert 'detector keywords ["alpha"] (line 7:11)' in output
    assert 'detector keywords ["beta"]' not in output
