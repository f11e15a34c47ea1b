"""``/api/rules``: the loaded rules with their match counts, and the pattern tester."""

from __future__ import annotations

import threading

from fastapi import APIRouter, Request

from sentinel.api.common import ApiError, not_found
from sentinel.api.deps import RuntimeDep
from sentinel.api.schemas import Classified, Problem, RuleList, RuleOut, RuleTest, RuleTestResult
from sentinel.core.fingerprint import Fingerprinter
from sentinel.core.model import Fingerprint
from sentinel.core.parsing import parse_message, workload_of
from sentinel.core.rules import DEFAULT_RULE, PatternError, Rule, compile_pattern
from sentinel.engine.pipeline import group_key
from sentinel.engine.runtime import Runtime

router = APIRouter(prefix="/api/rules", tags=["rules"])

REFRESH_AFTER = 500  # tests on one copy before it is thrown away (bounds what samples can add)


class TesterFingerprints:
    """The rule tester's own copy of the engine's fingerprinter.

    The engine's fingerprinter learns from every message it sees (templates merge after a few
    variants), so a tested sample must never reach it: the tester fingerprints on a copy made from
    the engine's snapshot, refreshed after each poll and after ``REFRESH_AFTER`` tests. The answer
    is what the engine would say if the line arrived now, and testing changes nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copy: Fingerprinter | None = None
        self._key: tuple[int, int] | None = None
        self._uses = 0

    def fingerprint(self, runtime: Runtime, message: str) -> Fingerprint:
        live = runtime.pipeline.fingerprinter
        key = (id(live), runtime.health.polls)
        with self._lock:
            if self._copy is None or key != self._key or self._uses >= REFRESH_AFTER:
                self._copy = Fingerprinter.restore(live.snapshot())
                self._key, self._uses = key, 0
            self._uses += 1
            return self._copy.fingerprint(message)


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
def test_rule(request: Request, runtime: RuntimeDep, body: RuleTest) -> RuleTestResult:
    labels = dict(body.labels)
    message, _level = parse_message(body.sample)
    namespace, container = labels.get("namespace") or "", labels.get("container") or ""
    workload = workload_of(labels)
    rules = runtime.rules
    classified = rules.classify(message, namespace=namespace, labels=labels)
    tester: TesterFingerprints = request.app.state.tester_fingerprints
    fingerprint = tester.fingerprint(runtime, message)
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
