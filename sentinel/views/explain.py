"""Why a line lands where it does, and why a group has its rule: the one rule tester.

``POST /api/rules/test`` and the console's "try a line" both call :func:`check_line`, which asks
the engine's own :meth:`~sentinel.engine.pipeline.Pipeline.explain` (``learn=False``: nothing is
learnt or cached), so the tester gives every sample the rule, template and group the engine would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sentinel.core.fingerprint import variables
from sentinel.core.model import ErrorGroup, LogEntry, Priority
from sentinel.core.parsing import parse_message
from sentinel.core.rules import DEFAULT_RULE, Rule, RuleSet, compile_pattern
from sentinel.engine.pipeline import Explained, Pipeline


class NoSuchRule(LookupError):
    """The tested rule is not in the loaded rule set."""


@dataclass(frozen=True, slots=True)
class LineTest:
    """The answer of the tester: whether the tested pattern or rule matches, and what the engine says."""

    matched: bool
    rule: str | None  # the tested rule; the classifying rule when neither pattern nor rule is given
    priority: str | None  # the priority the tested pattern or rule gives the line
    explained: Explained  # what the loaded rules and the fingerprinter make of it


def explain(pipeline: Pipeline, line: str, labels: dict[str, str], *, at: float | None = None) -> Explained:
    """What the engine would do with ``line`` from a stream with ``labels``; changes no state."""
    when = time.time() if at is None else at
    return pipeline.explain(LogEntry(int(when * 1e9), dict(labels), line), learn=False)


def check_line(
    pipeline: Pipeline,
    line: str,
    *,
    labels: dict[str, str],
    pattern: str | None = None,
    rule: str | None = None,
    priority: Priority | None = None,
) -> LineTest:
    """Test ``pattern`` (RE2), or the loaded rule named ``rule``, or (neither) the loaded rules on one line.

    Raises :class:`sentinel.core.rules.PatternError` for a pattern RE2 refuses and
    :class:`NoSuchRule` for a rule that is not loaded."""
    e = explain(pipeline, line, labels)
    if pattern is not None:
        # as the pipeline does: a pattern sees the raw line (the Go tool's meaning)
        matched = compile_pattern(pattern).search(line) is not None
        return LineTest(matched, None, priority.value if matched and priority is not None else None, e)
    if rule is not None:
        found = pipeline.rules.by_name(rule)
        if found is None:
            raise NoSuchRule(rule)
        matched = found.matches(e.message, namespace=e.namespace, labels=labels, line=line, level=e.level)
        return LineTest(matched, found.name, found.priority.value if matched else None, e)
    return LineTest(e.rule != DEFAULT_RULE, e.rule, e.priority, e)


def try_line(pipeline: Pipeline, line: str, *, namespace: str = "", pod: str = "", container: str = "") -> Explained:
    """What the engine would do with one pasted line, with optional stream labels (the console's tester)."""
    labels = {k: v for k, v in (("namespace", namespace), ("pod", pod), ("container", container)) if v}
    return check_line(pipeline, line, labels=labels).explained


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
    now_rule = explain(pipeline, sample, labels, at=group.last_seen).rule
    return Why(rule, message, matched, now_rule, variables(group.template, message) or [])
