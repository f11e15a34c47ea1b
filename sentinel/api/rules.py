"""``/api/rules``: the loaded rules with their match counts, and the pattern tester."""

from __future__ import annotations

from fastapi import APIRouter

from sentinel.api.common import ApiError, not_found
from sentinel.api.deps import RuntimeDep
from sentinel.api.schemas import Classified, Problem, RuleList, RuleOut, RuleTest, RuleTestResult
from sentinel.core.parsing import parse_message, workload_of
from sentinel.core.rules import DEFAULT_RULE, PatternError, Rule, compile_pattern
from sentinel.engine.pipeline import group_key

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
    labels = dict(body.labels)
    message, _level = parse_message(body.sample)
    namespace, container = labels.get("namespace") or "", labels.get("container") or ""
    workload = workload_of(labels)
    rules = runtime.rules
    classified = rules.classify(message, namespace=namespace, labels=labels)
    # peek, never learn: a tested sample must not merge templates or change a group's key
    fingerprint = runtime.pipeline.fingerprinter.peek(message)
    if body.pattern is not None:
        try:
            regex = compile_pattern(body.pattern)
        except PatternError as err:
            raise ApiError(422, f"invalid RE2 pattern: {err.reason}", [f"pattern: {err.reason}"]) from None
        matched = regex.search(message) is not None
        name = None
        priority = body.priority.value if matched and body.priority is not None else None
    elif body.rule is not None:
        rule = rules.by_name(body.rule)
        if rule is None:
            raise not_found("rule", body.rule)
        matched = rule.matches(message, namespace=namespace, labels=labels)
        name = rule.name
        priority = rule.priority.value if matched else None
    else:
        matched = classified.name != DEFAULT_RULE
        name = classified.name
        priority = classified.priority.value
    return RuleTestResult(
        matched=matched,
        rule=name,
        priority=priority,
        message=message,
        template=fingerprint.template,
        group_key=group_key(namespace, workload, container, fingerprint.key),
        namespace=namespace,
        workload=workload,
        container=container,
        classified=Classified(rule=classified.name, priority=classified.priority.value),
    )
