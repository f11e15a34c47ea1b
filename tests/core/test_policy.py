"""The safety policy: every refusal reason and its boundaries, state bookkeeping, effectiveness."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel.core.policy import (
    HOUR,
    IN_FLIGHT_TTL,
    ActionRequest,
    Allow,
    Breaker,
    Deny,
    DenyCode,
    PendingCheck,
    SafetyLimits,
    SafetyState,
    decide,
    is_effective,
    verdict_due,
    window_counts,
    workload_key,
)

NOW = 1_800_000_000.0
W = workload_key("demo", "web")


def req(**kw: object) -> ActionRequest:
    base: dict[str, object] = {
        "group_id": "g1",
        "rule": "crashloop",
        "action": "restart-pod",
        "namespace": "demo",
        "workload": W,
        "cooldown": 300.0,
    }
    base.update(kw)
    return ActionRequest(**base)  # type: ignore[arg-type]


def state_with(**kw: object) -> SafetyState:
    return SafetyState(**kw)  # type: ignore[arg-type]


LIMITS = SafetyLimits(max_actions_per_hour=5, per_workload_per_hour=3, excluded_namespaces=frozenset({"kube-system"}))
COOL = {"crashloop|demo/web": NOW + 10}


@pytest.mark.parametrize(
    ("request_", "state", "limits", "expected"),
    [
        pytest.param(req(), SafetyState(), LIMITS, Allow(), id="fresh-allowed"),
        pytest.param(
            req(), SafetyState(), dataclasses.replace(LIMITS, dry_run=True), Allow(dry_run=True), id="dry-run"
        ),
        pytest.param(
            req(), SafetyState(), dataclasses.replace(LIMITS, enabled=False), DenyCode.DISABLED, id="disabled"
        ),
        pytest.param(
            req(manual=True),
            SafetyState(),
            dataclasses.replace(LIMITS, enabled=False),
            DenyCode.DISABLED,
            id="disabled-manual",
        ),
        pytest.param(req(namespace="kube-system"), SafetyState(), LIMITS, DenyCode.EXCLUDED, id="excluded"),
        pytest.param(
            req(namespace="kube-system", manual=True), SafetyState(), LIMITS, DenyCode.EXCLUDED, id="excluded-manual"
        ),
        pytest.param(req(action="none"), SafetyState(), LIMITS, Allow(record_only=True), id="none-record-only"),
        pytest.param(
            req(action="none"), state_with(cooldowns=dict(COOL)), LIMITS, DenyCode.COOLDOWN, id="none-in-cooldown"
        ),
        pytest.param(
            req(action="none"),
            state_with(actions=[NOW - 1] * 5),
            LIMITS,
            Allow(record_only=True),
            id="none-ignores-budget",
        ),
        pytest.param(
            req(action="none"),
            state_with(actions=[NOW - 1] * 3, workload_actions={W: [NOW - 1] * 3}),
            LIMITS,
            Allow(record_only=True),
            id="none-ignores-workload-cap",
        ),
        pytest.param(
            req(action="none"),
            state_with(in_flight={W: NOW - 1}),
            LIMITS,
            Allow(record_only=True),
            id="none-ignores-in-flight",
        ),
        pytest.param(
            req(action="none"),
            SafetyState(),
            dataclasses.replace(LIMITS, dry_run=True),
            Allow(dry_run=True, record_only=True),
            id="none-dry-run",
        ),
        pytest.param(
            req(action="none"),
            SafetyState(),
            dataclasses.replace(LIMITS, enabled=False),
            DenyCode.DISABLED,
            id="none-disabled",
        ),
        pytest.param(
            req(action="none", namespace="kube-system"),
            SafetyState(),
            LIMITS,
            Allow(record_only=True),
            id="none-in-excluded-namespace-is-recorded",
        ),
        pytest.param(
            req(action="none", workload="kube-system/coredns", namespace="kube-system"),
            state_with(cooldowns={"crashloop|kube-system/coredns": NOW + 10}),
            LIMITS,
            DenyCode.COOLDOWN,
            id="none-in-excluded-namespace-cooldown",
        ),
        pytest.param(
            req(action="none"),
            state_with(breakers={W: Breaker(open=True, reason="3 ineffective")}),
            LIMITS,
            Allow(record_only=True),
            id="none-ignores-breaker",
        ),
        pytest.param(req(), state_with(cooldowns=dict(COOL)), LIMITS, DenyCode.COOLDOWN, id="cooldown"),
        pytest.param(
            req(), state_with(cooldowns={"crashloop|demo/web": NOW}), LIMITS, Allow(), id="cooldown-ends-exactly-now"
        ),
        pytest.param(
            req(),
            state_with(cooldowns={"crashloop|demo/web": NOW + 0.001}),
            LIMITS,
            DenyCode.COOLDOWN,
            id="cooldown-1ms-left",
        ),
        pytest.param(req(rule="oom"), state_with(cooldowns=dict(COOL)), LIMITS, Allow(), id="cooldown-other-rule"),
        pytest.param(
            req(workload="demo/api"), state_with(cooldowns=dict(COOL)), LIMITS, Allow(), id="cooldown-other-workload"
        ),
        pytest.param(req(manual=True), state_with(cooldowns=dict(COOL)), LIMITS, Allow(), id="cooldown-manual-bypass"),
        pytest.param(req(), state_with(actions=[NOW - 10] * 5), LIMITS, DenyCode.BUDGET, id="budget-spent"),
        pytest.param(req(), state_with(actions=[NOW - 10] * 4), LIMITS, Allow(), id="budget-one-left"),
        pytest.param(req(), state_with(actions=[NOW - HOUR] * 5), LIMITS, Allow(), id="budget-hour-old-expired"),
        pytest.param(
            req(), state_with(actions=[NOW - HOUR + 1] * 5), LIMITS, DenyCode.BUDGET, id="budget-just-inside-hour"
        ),
        pytest.param(
            req(manual=True), state_with(actions=[NOW] * 5), LIMITS, DenyCode.BUDGET, id="budget-binds-manual"
        ),
        pytest.param(
            req(), SafetyState(), dataclasses.replace(LIMITS, max_actions_per_hour=0), DenyCode.BUDGET, id="budget-zero"
        ),
        pytest.param(
            req(),
            state_with(actions=[NOW - 5] * 3, workload_actions={W: [NOW - 5] * 3}),
            LIMITS,
            DenyCode.WORKLOAD_CAP,
            id="workload-cap",
        ),
        pytest.param(
            req(),
            state_with(actions=[NOW - 5] * 2, workload_actions={W: [NOW - 5] * 2}),
            LIMITS,
            Allow(),
            id="workload-cap-one-left",
        ),
        pytest.param(
            req(workload="demo/api"),
            state_with(actions=[NOW - 5] * 3, workload_actions={W: [NOW - 5] * 3}),
            LIMITS,
            Allow(),
            id="workload-cap-other-workload",
        ),
        pytest.param(
            req(),
            state_with(actions=[NOW - HOUR] * 3, workload_actions={W: [NOW - HOUR] * 3}),
            LIMITS,
            Allow(),
            id="workload-cap-expired",
        ),
        pytest.param(
            req(),
            state_with(breakers={W: Breaker(open=True, reason="3 ineffective")}),
            LIMITS,
            DenyCode.BREAKER,
            id="breaker",
        ),
        pytest.param(req(), state_with(breakers={W: Breaker(open=False)}), LIMITS, Allow(), id="breaker-closed"),
        pytest.param(
            req(manual=True),
            state_with(breakers={W: Breaker(open=True, reason="x")}),
            LIMITS,
            Allow(),
            id="breaker-manual-bypass",
        ),
        pytest.param(req(), state_with(in_flight={W: NOW - 1}), LIMITS, DenyCode.IN_FLIGHT, id="in-flight"),
        pytest.param(
            req(manual=True), state_with(in_flight={W: NOW - 1}), LIMITS, DenyCode.IN_FLIGHT, id="in-flight-manual"
        ),
        pytest.param(req(), state_with(in_flight={W: NOW - IN_FLIGHT_TTL}), LIMITS, Allow(), id="in-flight-stale"),
        pytest.param(
            req(),
            state_with(in_flight={W: NOW - 1}, cooldowns=dict(COOL), actions=[NOW] * 5),
            dataclasses.replace(LIMITS, enabled=False),
            DenyCode.DISABLED,
            id="order-disabled-first",
        ),
        pytest.param(
            req(namespace="kube-system"),
            state_with(breakers={W: Breaker(open=True)}),
            LIMITS,
            DenyCode.EXCLUDED,
            id="order-excluded-before-breaker",
        ),
        pytest.param(
            req(),
            state_with(breakers={W: Breaker(open=True)}, in_flight={W: NOW}),
            LIMITS,
            DenyCode.BREAKER,
            id="order-breaker-before-in-flight",
        ),
        pytest.param(
            req(),
            state_with(in_flight={W: NOW}, cooldowns=dict(COOL)),
            LIMITS,
            DenyCode.IN_FLIGHT,
            id="order-in-flight-before-cooldown",
        ),
        pytest.param(
            req(),
            state_with(cooldowns=dict(COOL), actions=[NOW] * 5),
            LIMITS,
            DenyCode.COOLDOWN,
            id="order-cooldown-before-budget",
        ),
        pytest.param(
            req(),
            state_with(actions=[NOW] * 5, workload_actions={W: [NOW] * 3}),
            LIMITS,
            DenyCode.BUDGET,
            id="order-budget-before-cap",
        ),
    ],
)
def test_decide(request_: ActionRequest, state: SafetyState, limits: SafetyLimits, expected: Allow | DenyCode) -> None:
    got = decide(request_, state, limits, NOW)
    if isinstance(expected, Allow):
        assert got == expected
    else:
        assert isinstance(got, Deny)
        assert got.code is expected
        assert got.reason


@pytest.mark.parametrize(
    ("state", "needle", "until"),
    [
        pytest.param(
            state_with(cooldowns={"crashloop|demo/web": NOW + 90}), "1m30s remaining", NOW + 90, id="cooldown"
        ),
        pytest.param(state_with(actions=[NOW - 600, *[NOW - 10] * 4]), "5 of 5", NOW - 600 + HOUR, id="budget"),
        pytest.param(
            state_with(actions=[NOW - 100] * 3, workload_actions={W: [NOW - 100, NOW - 50, NOW - 5]}),
            "3 of 3",
            NOW - 100 + HOUR,
            id="cap",
        ),
    ],
)
def test_deny_says_how_long(state: SafetyState, needle: str, until: float) -> None:
    got = decide(req(), state, LIMITS, NOW)
    assert isinstance(got, Deny)
    assert needle in got.reason
    assert got.until == pytest.approx(until)


def test_note_started_and_finished() -> None:
    s = SafetyState()
    r = req(cooldown=120)
    s.note_started(r, NOW)
    assert s.is_in_flight(W, NOW)
    assert s.cooldown_remaining("crashloop", W, NOW) == 120
    assert s.actions_last_hour(NOW) == 1 and s.actions_last_hour(NOW, W) == 1
    assert decide(req(rule="other"), s, LIMITS, NOW).code is DenyCode.IN_FLIGHT  # type: ignore[union-attr]
    s.note_finished(r, NOW + 1)
    assert not s.is_in_flight(W, NOW + 1)
    assert decide(req(), s, LIMITS, NOW + 1).code is DenyCode.COOLDOWN  # type: ignore[union-attr]
    assert decide(req(), s, LIMITS, NOW + 120) == Allow()


def test_record_only_spends_no_budget_but_starts_cooldown() -> None:
    s = SafetyState()
    s.note_started(req(action="none", cooldown=60), NOW)
    assert s.actions == [] and s.in_flight == {}
    assert s.cooldown_remaining("crashloop", W, NOW) == 60


def test_record_only_never_eats_the_budget_of_real_actions() -> None:
    """Alert-only records, many of them, leave the whole budget and cap to the real actions."""
    limits = dataclasses.replace(LIMITS, max_actions_per_hour=1, per_workload_per_hour=1)
    s = SafetyState()
    for i in range(20):
        r = req(action="none", rule=f"alert-{i}", cooldown=60)
        d = decide(r, s, limits, NOW + i)
        assert d == Allow(record_only=True)
        assert d.reason == "record only (action none)"
        s.note_started(r, NOW + i)
        s.note_finished(r, NOW + i)
    assert s.actions_last_hour(NOW + 20) == 0 and s.actions_last_hour(NOW + 20, W) == 0
    real = req(cooldown=60)
    assert decide(real, s, limits, NOW + 20) == Allow()
    s.note_started(real, NOW + 20)
    assert decide(req(rule="oom"), s, limits, NOW + 21).code is DenyCode.IN_FLIGHT  # type: ignore[union-attr]


def test_record_only_finishing_keeps_a_real_actions_in_flight_mark() -> None:
    s = SafetyState()
    s.note_started(req(), NOW)
    s.note_finished(req(action="none", rule="alert"), NOW + 1)
    assert s.is_in_flight(W, NOW + 1)


def test_cooldown_never_shortened() -> None:
    s = SafetyState()
    s.note_started(req(cooldown=600, manual=True), NOW)
    s.note_finished(req(), NOW)
    s.note_started(req(cooldown=10, manual=True), NOW + 1)
    assert s.cooldown_remaining("crashloop", W, NOW + 1) == pytest.approx(599)


def test_prune_drops_only_what_cannot_refuse() -> None:
    s = state_with(
        cooldowns={"a|x": NOW - 1, "b|x": NOW + 1},
        actions=[NOW - HOUR - 1, NOW - 5],
        workload_actions={"x": [NOW - HOUR - 1], "y": [NOW - 5]},
        in_flight={"x": NOW - IN_FLIGHT_TTL - 1, "y": NOW},
    )
    s.prune(NOW)
    assert s.cooldowns == {"b|x": NOW + 1}
    assert s.actions == [NOW - 5]
    assert s.workload_actions == {"y": [NOW - 5]}
    assert s.in_flight == {"y": NOW}


def check(n: int = 1) -> PendingCheck:
    return PendingCheck(f"r{n}", "g1", W, "rollout-restart", NOW)


@pytest.mark.parametrize(
    ("verdicts", "threshold", "opened_at"),
    [
        pytest.param([False, False, False], 3, 2, id="third-ineffective-opens"),
        pytest.param([False, False], 3, None, id="two-not-enough"),
        pytest.param([False, True, False, False], 3, None, id="effective-resets-count"),
        pytest.param([False], 1, 0, id="threshold-one"),
        pytest.param([False, False, False], 0, None, id="threshold-zero-never-opens"),
    ],
)
def test_breaker_opens_after_k_ineffective(verdicts: list[bool], threshold: int, opened_at: int | None) -> None:
    s = SafetyState()
    opened = []
    for n, effective in enumerate(verdicts):
        s.note_executed(check(n))
        if s.note_verdict(check(n), effective=effective, now=NOW + n, threshold=threshold):
            opened.append(n)
    assert opened == ([] if opened_at is None else [opened_at])
    assert s.breaker_open(W) is (opened_at is not None)
    assert s.pending == {}


def test_reset_breaker() -> None:
    s = SafetyState()
    for n in range(3):
        s.note_verdict(check(n), effective=False, now=NOW, threshold=3)
    assert s.breaker_open(W)
    assert s.reset_breaker(W, by="alice", now=NOW + 5)
    assert not s.breaker_open(W)
    assert s.breakers[W].reset_by == "alice" and s.ineffective.get(W) is None
    assert not s.reset_breaker(W, by="alice", now=NOW + 6)
    # a fresh run of ineffective actions is needed to open it again
    assert not s.note_verdict(check(9), effective=False, now=NOW, threshold=3)


def test_state_round_trips_through_json() -> None:
    s = SafetyState()
    s.note_started(req(), NOW)
    s.note_executed(check())
    for n in range(3):
        s.note_verdict(check(n + 10), effective=False, now=NOW, threshold=3)
    back = SafetyState.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s
    assert SafetyState.from_dict(None) == SafetyState()
    assert SafetyState.from_dict({}) == SafetyState()


def test_summary_for_display() -> None:
    s = SafetyState()
    s.note_started(req(), NOW)
    out = s.summary(NOW + 10, LIMITS)
    assert out["actions_last_hour"] == 1
    assert out["cooldowns"][0]["rule"] == "crashloop" and out["cooldowns"][0]["remaining"] == 290
    assert out["in_flight"] == [W]
    json.dumps(out)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        pytest.param({"max_actions_per_hour": -1}, "max_actions_per_hour", id="negative-budget"),
        pytest.param({"per_workload_per_hour": -1}, "per_workload_per_hour", id="negative-cap"),
        pytest.param({"effectiveness_window": 0}, "effectiveness_window", id="zero-window"),
    ],
)
def test_limits_refuse_nonsense(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SafetyLimits(**kw)  # type: ignore[arg-type]


def test_limits_accept_a_list_of_namespaces() -> None:
    lim = SafetyLimits(excluded_namespaces=["a", "b"])  # type: ignore[arg-type]
    assert lim.excluded_namespaces == frozenset({"a", "b"})
    hash(lim)


# -- effectiveness ---------------------------------------------------------------------------

AT = 1_800_000_030.0  # 30s into minute M
M = int(AT // 60)


@pytest.mark.parametrize(
    ("counts", "window", "expected"),
    [
        pytest.param(
            {M - 5: 10, M - 1: 2, M: 7, M + 1: 3, M + 5: 1}, 300, (12, 4), id="both-sides-action-minute-excluded"
        ),
        pytest.param({M - 6: 10, M + 6: 10}, 300, (0, 0), id="outside-window"),
        pytest.param({}, 300, (0, 0), id="empty"),
        pytest.param({M - 1: 4, M + 1: 4}, 30, (4, 4), id="window-at-least-one-minute"),
    ],
)
def test_window_counts(counts: dict[int, int], window: float, expected: tuple[int, int]) -> None:
    assert window_counts(counts, AT, window) == expected


@pytest.mark.parametrize(
    ("before", "after", "effective"),
    [
        pytest.param(10, 0, True, id="stopped"),
        pytest.param(10, 4, True, id="more-than-halved"),
        pytest.param(10, 5, False, id="exactly-half-is-not-enough"),
        pytest.param(10, 10, False, id="same-rate"),
        pytest.param(10, 30, False, id="worse"),
        pytest.param(0, 0, True, id="nothing-either-side"),
        pytest.param(0, 1, False, id="came-back-from-nothing"),
    ],
)
def test_is_effective(before: int, after: int, effective: bool) -> None:
    assert is_effective(before, after) is effective


@pytest.mark.parametrize(
    ("now", "due"),
    [
        pytest.param((M + 1 + 5) * 60 - 1, False, id="one-second-early"),
        pytest.param((M + 1 + 5) * 60, True, id="window-complete"),
    ],
)
def test_verdict_due(now: float, due: bool) -> None:
    assert verdict_due(AT, 300, now) is due


@given(
    st.dictionaries(st.integers(M - 20, M + 20), st.integers(0, 1000), max_size=30),
    st.floats(60, 1200),
)
def test_window_counts_never_exceed_total(counts: dict[int, int], window: float) -> None:
    before, after = window_counts(counts, AT, window)
    assert before + after <= sum(counts.values())


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(req(), id="automatic"),
        pytest.param(req(manual=True), id="manual"),
        pytest.param(req(action="none"), id="alert"),
        pytest.param(req(namespace="kube-system"), id="excluded-too"),
    ],
)
def test_a_follower_is_refused_first_naming_the_leader(request_: ActionRequest) -> None:
    disabled = dataclasses.replace(LIMITS, enabled=False)  # the follower refusal comes before every other
    d = decide(request_, SafetyState(), disabled, NOW, leader=False, holder="sentinel-0")
    assert isinstance(d, Deny) and d.code is DenyCode.FOLLOWER
    assert d.reason == "follower: read-only; only the leader (sentinel-0) acts. Ask the leader's console"
    nobody = decide(request_, SafetyState(), LIMITS, NOW, leader=False)
    assert isinstance(nobody, Deny) and "(none right now)" in nobody.reason
    as_leader = decide(request_, SafetyState(), LIMITS, NOW, leader=True, holder="x")
    assert as_leader == decide(request_, SafetyState(), LIMITS, NOW)  # leading changes nothing else
