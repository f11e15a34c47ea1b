"""A rules file rejected on reload shows in the console until a good file loads (issue 18)."""

from __future__ import annotations

from pathlib import Path

from sentinel.engine.runtime import Runtime
from tests.ui.conftest import no_exception, open_page, texts


def test_rejected_rules_file_shows_a_banner_until_a_good_file_loads(empty_rt: Runtime, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_bytes(b"rules:\n  - name: caf\xe9 [x](javascript:alert(1))\n")
    empty_rt.rules_path = str(rules)
    assert not empty_rt.reload_rules(force=True)[0]
    at = open_page("overview")
    no_exception(at)
    assert "Rules file rejected" in texts(at)
    shown = [str(t.value) for t in at.text]
    assert any(s.startswith(f"rules file {rules} rejected: ") and "not UTF-8: byte 0xe9" in s for s in shown), shown
    rules.write_text("rules:\n  - {name: ok, priority: P1, match: {pattern: x}}\n", encoding="utf-8")
    assert empty_rt.reload_rules(force=True)[0]
    at = open_page("overview")
    assert "Rules file rejected" not in texts(at)
