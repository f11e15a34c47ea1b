"""``/api/rules``: the loaded rules with their match counts, the pattern tester and the backtest.

The tester and the backtest are open to anyone who can read the API, so both are bounded: the
body is capped (``sample`` 16 KiB, ``pattern`` 4 KiB, 64 KiB in all), at most
:data:`sentinel.engine.backtest.MAX_CONCURRENT` run at once in the process (one more is answered
429 with ``Retry-After``), and they are plain ``def`` routes, so they run in the server's
threadpool and never on the event loop: ``/health`` answers while they work.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from sentinel.api.common import ApiError, not_found
from sentinel.api.deps import Groups, PipelineDep, Rules
from sentinel.api.schemas import (
    MAX_PATTERN,
    Classified,
    Problem,
    Request,
    RuleList,
    RuleOut,
    RuleTest,
    RuleTestResult,
)
from sentinel.core.rules import DEFAULT_RULE, PatternError, Rule
from sentinel.engine.backtest import BUSY, EXPENSIVE, MAX_GROUPS, backtest
from sentinel.engine.pipeline import Pipeline
from sentinel.views.explain import NoSuchRule, check_line

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
def list_rules(loaded: Rules) -> RuleList:
    hits = dict(loaded.rule_hits)
    return RuleList(
        rules=[_rule_out(r, hits) for r in loaded.rules.all_rules],
        default_matches=hits.get(DEFAULT_RULE, 0),
        source=loaded.rules_path,
        loaded_at=loaded.health.rules_loaded_at,
        error=loaded.health.rules_error,
    )


@router.post(
    "/test",
    response_model=RuleTestResult,
    responses={404: {"model": Problem}, 429: {"model": Problem}},
    summary="Test a pattern or a rule against a sample line",
    description=(
        "`pattern` is an RE2 regex (422 with RE2's reason when it does not compile); `rule` names a loaded "
        "rule; with neither, the sample is classified by the loaded rules. The answer also gives the "
        "template and group key the sample would get. Read-only: no token needed."
    ),
)
def test_rule(pipeline: PipelineDep, body: RuleTest) -> RuleTestResult:
    with EXPENSIVE.slot() as got:
        if not got:
            raise _busy()
        return _test_rule(pipeline, body)


def _busy() -> ApiError:
    return ApiError(429, BUSY, headers={"Retry-After": "1"})


def _test_rule(pipeline: Pipeline, body: RuleTest) -> RuleTestResult:
    try:
        t = check_line(
            pipeline,
            body.sample,
            labels=dict(body.labels),
            pattern=body.pattern,
            rule=body.rule,
            priority=body.priority,
        )
    except PatternError as err:
        raise ApiError(422, f"invalid RE2 pattern: {err.reason}", [f"pattern: {err.reason}"]) from None
    except NoSuchRule:
        raise not_found("rule", body.rule or "") from None
    e = t.explained
    return RuleTestResult(
        matched=t.matched,
        rule=t.rule,
        priority=t.priority,
        message=e.message,
        template=e.template,
        group_key=e.group,
        namespace=e.namespace,
        workload=e.workload,
        container=e.container,
        classified=Classified(rule=e.rule, priority=e.priority),
    )


class BacktestRequest(Request):
    """Run ``pattern`` (RE2) over the stored samples of the most recently seen groups."""

    pattern: str = Field(min_length=1, max_length=MAX_PATTERN)
    max_groups: int = Field(default=MAX_GROUPS, ge=1, le=MAX_GROUPS, description="groups to scan, newest first")
    max_rows: int = Field(default=50, ge=0, le=200, description="matching groups to list")


class BacktestResult(BaseModel):
    pattern: str
    groups_scanned: int
    groups_total: int
    partial: bool = Field(description="true when max_groups stopped the scan before the oldest group")
    samples_scanned: int
    groups_matched: int
    samples_matched: int
    occurrences: int = Field(description="occurrences counted in the matching groups: what the pattern would catch")
    by_rule: dict[str, int] = Field(description="matching groups by the rule that holds them today")
    rows: list[dict[str, Any]]
    seconds: float


@router.post(
    "/backtest",
    response_model=BacktestResult,
    responses={422: {"model": Problem}, 429: {"model": Problem}},
    summary="Backtest a pattern over the stored samples",
    description=(
        "The pattern is RE2 (422 with RE2's reason when it does not compile). Read-only: no token needed. "
        "At most two backtests or rule tests run at once; one more is answered 429 with Retry-After."
    ),
)
def backtest_pattern(store: Groups, body: BacktestRequest) -> BacktestResult:
    bt = backtest(store, body.pattern, max_groups=body.max_groups, max_rows=body.max_rows)
    if bt.error == BUSY:
        raise _busy()
    if bt.error:
        raise ApiError(422, f"invalid RE2 pattern: {bt.error}", [f"pattern: {bt.error}"])
    return BacktestResult(
        pattern=bt.pattern,
        groups_scanned=bt.groups_scanned,
        groups_total=bt.groups_total,
        partial=bt.partial,
        samples_scanned=bt.samples_scanned,
        groups_matched=bt.groups_matched,
        samples_matched=bt.samples_matched,
        occurrences=bt.occurrences,
        by_rule=dict(bt.by_rule),
        rows=bt.rows,
        seconds=round(bt.seconds, 4),
    )
