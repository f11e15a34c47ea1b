"""The rules page's table; the tester and a group's "why" are in :mod:`sentinel.views.explain`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sentinel.core.rules import DEFAULT_RULE, RuleSet
from sentinel.engine.backtest import Backtest as Backtest  # re-exported: pages import it from here
from sentinel.engine.backtest import backtest as backtest


def rule_rows(rules: RuleSet, hits: Mapping[str, int], groups_by_rule: Mapping[str, int]) -> list[dict[str, Any]]:
    """Every rule in file order (disabled ones too), then the catch-all ``default``."""
    rows = []
    for r in [*rules.all_rules, rules.by_name(DEFAULT_RULE)]:
        if r is None:
            continue
        match = r.pattern or ("keywords: " + ", ".join(r.keywords) if r.keywords else "(everything)")
        if r.name == DEFAULT_RULE and not r.pattern:
            match = "(no other rule matched)"
        scope = []
        if r.namespaces_allow:
            scope.append("only " + ", ".join(sorted(r.namespaces_allow)))
        if r.namespaces_deny:
            scope.append("not " + ", ".join(sorted(r.namespaces_deny)))
        scope.extend(f"{m.name}={m.spec}" for m in r.labels)
        rows.append(
            {
                "rule": r.name,
                "enabled": r.enabled,
                "priority": r.priority.value,
                "match": match,
                "scope": "; ".join(scope),
                "action": r.action,
                "params": ", ".join(f"{k}={v}" for k, v in r.params.items()),
                "cooldown": r.cooldown,
                "lines matched": int(hits.get(r.name, 0)),
                "groups": int(groups_by_rule.get(r.name, 0)),
                "description": r.description,
            }
        )
    return rows
