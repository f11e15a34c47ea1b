"""``/api/rules``: the loaded rules with their match counts, and the pattern tester."""

from __future__ import annotations

import time

from fastapi import APIRouter

from sentinel.api.common import ApiError, not_found
from sentinel.api.deps import RuntimeDep
from sentinel.api.schemas import Classified, Problem, RuleList, RuleOut, RuleTest, RuleTestResult
from sentinel.core.model import LogEntry
from sentinel.core.rules import DEFAULT_RULE, PatternError, Rule, compile_pattern

router = APIRouter(prefix="/api/rules", tags=["rules"])


def _rule_out(rule: Rule, hits: dict[str, int]) -> RuleOut:
    return RuleOut(
        name=rule.name,
        description=rule.description,
        priority=rule.priority.value,
        enabled=rule.enabled,
        pattern=rule.pattern,
        keywords=list(rule.keywords),
        labels={m.name: m.spec for m in rule.labels},
        namespaces=sorted(rule.namespaces_allow) + sorted(f"!{n}" for n in rule.namespaces_deny),
        action=rule.action,
        params=dict(rule.params),
        cooldown=rule.cooldown,
        matches=hits.get(rule.name, 0),
    )


@router.get("", response_model=RuleList, summary="The loaded rules, with match counts")
def list_rules(runtime: RuntimeDep) -> RuleList:
    hits = dict(runtime.rule_hits)
    rules = runtime.rules
    return RuleList(
        rules=[_rule_out(r, hits) for r in rules.all_rules],
        default_matches=hits.get(DEFAULT_RULE, 0),
        source=runtime.rules_path,
        loaded_at=runtime.health.rules_loaded_at,
        error=runtime.health.rules_error,
    )


@router.post(
    "/test",
    response_model=RuleTestResult,
    responses={404: {"model": Problem}},
    summary="Test a pattern or a rule against a sample line",
    description=(
        "`pattern` is an RE2 regex (422 with RE2's reason when it does not compile); `rule` names a loaded "
        "rule; with neither, the sample is classified by the loaded rules. The answer also gives the "
        "template and group key the sample would get. Read-only: no token needed."
    ),
)
def test_rule(runtime: RuntimeDep, body: RuleTest) -> RuleTestResult:
    pipeline = runtime.pipeline
    labels = dict(body.labels)
    explained = pipeline.explain(LogEntry(int(time.time() * 1e9), labels, body.sample))
    message = explained.message
    if body.pattern is not None:
        try:
            regex = compile_pattern(body.pattern)
        except PatternError as err:
            raise ApiError(422, f"invalid RE2 pattern: {err.reason}", [f"pattern: {err.reason}"]) from None
        matched = regex.search(message) is not None
        name = None
        priority = body.priority.value if matched and body.priority is not None else None
    elif body.rule is not None:
        rule = pipeline.rules.by_name(body.rule)
        if rule is None:
            raise not_found("rule", body.rule)
        matched = rule.matches(message, namespace=explained.namespace, labels=labels)
        name = rule.name
        priority = rule.priority.value if matched else None
    else:
        matched = explained.rule != DEFAULT_RULE
        name = explained.rule
        priority = explained.priority
    return RuleTestResult(
        matched=matched,
        rule=name,
        priority=priority,
        message=message,
        template=explained.template,
        group_key=explained.group,
        namespace=explained.namespace,
        workload=explained.workload,
        container=explained.container,
        classified=Classified(rule=explained.rule, priority=explained.priority),
    )
