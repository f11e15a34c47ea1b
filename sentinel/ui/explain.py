"""Why a line or a group landed where it did: the rule tester, a group's "why", the pattern backtest."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sentinel.core.fingerprint import variables
from sentinel.core.model import ErrorGroup, LogEntry
from sentinel.core.parsing import parse_message
from sentinel.core.rules import DEFAULT_RULE, Rule, RuleSet
from sentinel.engine.backtest import Backtest as Backtest  # re-exported: pages import it from here
from sentinel.engine.backtest import backtest as backtest
from sentinel.engine.pipeline import Explained, Pipeline


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


def try_line(pipeline: Pipeline, line: str, *, namespace: str = "", pod: str = "", container: str = "") -> Explained:
    """What the engine would do with one pasted line, with optional stream labels."""
    labels = {k: v for k, v in (("namespace", namespace), ("pod", pod), ("container", container)) if v}
    return pipeline.explain(LogEntry(int(time.time() * 1e9), labels, line), learn=False)


@dataclass(frozen=True, slots=True)
class Why:
    """Why a group's lines match its rule: the rule, the message and the part the pattern found."""

    rule: Rule | None
    message: str
    matched: str
    now_rule: str  # what the current rules say about the newest sample
    variables: list[str] = field(default_factory=list)  # the sample's parts the template shows as <*>


def why(group: ErrorGroup, rules: RuleSet, pipeline: Pipeline) -> Why:
    sample = group.samples[-1] if group.samples else group.template
    message, _level = parse_message(sample)
    rule = rules.by_name(group.rule)
    matched = ""
    if rule is not None and rule.regex is not None:
        m = rule.regex.search(message if rule.on == "message" else sample)
        if m is not None:
            matched = str(m.group(0))
    elif rule is not None and rule.keywords:
        low = (message if rule.on == "message" else sample).lower()
        matched = next((k for k in rule.keywords if k in low), "")
    labels = {"namespace": group.namespace, "container": group.container}
    pod = group.last_pod or (group.pods[-1] if group.pods else "")
    if pod:
        labels["pod"] = pod
    now_rule = pipeline.explain(LogEntry(int(group.last_seen * 1e9), labels, sample), learn=False).rule
    return Why(rule, message, matched, now_rule, variables(group.template, message) or [])
