"""Notifications reach real HTTP receivers on 127.0.0.1, from a real Runtime's poll."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sentinel.core.model import Priority, RemediationRecord, Result, Status
from sentinel.notify.notifier import remediation_event
from tests.notify.helpers import OOM, OTHER_NS, REFUSED, build, destination
from tests.notify.receiver import receiver


def test_webhook_gets_the_evidence_and_a_link(tmp_path: Path) -> None:
    token = tmp_path / "hook-token"
    token.write_text("hook-bearer-0123456789\n")
    with receiver() as rx:
        rt = build(tmp_path, destination("hook", "webhook", rx.url + "/in", f"token_file: {token}"), OOM)
        assert rt.poll_once().ok
        assert rt.notifier.drain()
        rt.stop()
    assert len(rx.received) == 1
    got = rx.received[0]
    assert got.path == "/in"
    assert got.headers["Authorization"] == "Bearer hook-bearer-0123456789"
    body = got.body
    [group] = rt.store.all_groups()
    assert body["kind"] == "kube-sentinel.notification"
    assert body["event"] == "new"
    assert body["priority"] == "P1"
    assert (body["namespace"], body["workload"], body["rule"]) == ("shop", "cart", "oom")
    assert "OOMKilled" in body["template"]
    assert body["count"] == 3
    assert body["rate_per_minute"] == pytest.approx(3 / 5)
    assert body["samples"] == [OOM[1]["line"], OOM[2]["line"]]
    assert body["link"] == f"https://sentinel.example.com/errors/{body['group_id']}"
    assert group.id == body["group_id"]


def test_slack_gets_blocks(tmp_path: Path) -> None:
    with receiver() as rx:
        rt = build(tmp_path, destination("chat", "slack", rx.url + "/services/T0/B0/secret"), OOM)
        assert rt.poll_once().ok
        assert rt.notifier.drain()
        rt.stop()
    [body] = rx.bodies()
    assert body["text"].startswith("[P1] new error: shop/cart")
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header" and kinds[-1] == "context"
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": "[P1] new error: shop/cart"}
    fields = [f["text"] for f in body["blocks"][2]["fields"]]
    assert "*Count*\n3" in fields and "*Rule*\noom" in fields
    samples = body["blocks"][3]["text"]["text"]
    assert OOM[1]["line"] in samples and OOM[2]["line"] in samples
    link = body["blocks"][-1]["elements"][0]["text"]
    assert link.startswith("<https://sentinel.example.com/errors/") and link.endswith("|Open in Kube Sentinel>")


def test_selector_priority_namespaces_rules(tmp_path: Path) -> None:
    with receiver() as p2, receiver() as shop_refused, receiver() as everything:
        notifications = (
            destination("p2", "webhook", p2.url, "min_priority: P2")
            + destination("shop-refused", "webhook", shop_refused.url, "namespaces: [shop]\nrules: [refused]")[
                len("  destinations:\n") :
            ]
            + destination("all", "webhook", everything.url)[len("  destinations:\n") :]
        )
        rt = build(tmp_path, notifications, OOM + REFUSED + OTHER_NS)
        assert rt.poll_once().ok
        assert rt.notifier.drain()
        rt.stop()
    seen = {
        name: sorted((b["namespace"], b["rule"]) for b in rx.bodies())
        for name, rx in (("p2", p2), ("shop-refused", shop_refused), ("all", everything))
    }
    assert seen["p2"] == [("data", "oom"), ("shop", "oom")]
    assert seen["shop-refused"] == [("shop", "refused")]
    assert seen["all"] == [("data", "oom"), ("shop", "oom"), ("shop", "refused")]


def test_rate_limit_per_destination(tmp_path: Path) -> None:
    with receiver() as rx:
        rt = build(tmp_path, destination("hook", "webhook", rx.url, "rate_limit: 2"), OOM + REFUSED + OTHER_NS)
        assert rt.poll_once().ok
        assert rt.notifier.drain()
        [status] = rt.notifier.status()
        rt.stop()
    assert len(rx.received) == 2
    assert (status["sent"], status["rate_limited"]) == (2, 1)


def test_acknowledged_and_snoozed_groups_are_not_notified(tmp_path: Path) -> None:
    with receiver() as rx:
        rt = build(tmp_path, destination("hook", "webhook", rx.url, "events: [escalated]"), OOM)
        assert rt.poll_once().ok
        [group] = rt.store.all_groups()
        group = group or next(iter(rt.store.iter_groups()))
        for status in (Status.ACKNOWLEDGED, Status.SNOOZED):
            group.status = status
            rt.notifier.group_changed("escalated", group)
        group.status = Status.OPEN
        rt.notifier.group_changed("escalated", group)
        assert rt.notifier.drain()
        [status] = rt.notifier.status()
        rt.stop()
    assert [b["event"] for b in rx.bodies()] == ["escalated"]
    assert status["suppressed"] == 2


def test_temporary_failures_are_retried_with_backoff(tmp_path: Path) -> None:
    with receiver(statuses=[500, 503]) as rx:
        rt = build(tmp_path, destination("hook", "webhook", rx.url), OOM)
        assert rt.poll_once().ok
        assert rt.notifier.drain()
        [status] = rt.notifier.status()
        rt.stop()
    assert len(rx.received) == 3
    assert rx.bodies()[0] == rx.bodies()[2]
    assert (status["sent"], status["retried"], status["failed"], status["failing"]) == (1, 2, 0, False)


def test_a_permanent_refusal_is_not_retried(tmp_path: Path) -> None:
    with receiver(statuses=[400]) as rx:
        rt = build(tmp_path, destination("hook", "webhook", rx.url, "max_attempts: 5"), OOM)
        assert rt.poll_once().ok
        assert rt.notifier.drain()
        [status] = rt.notifier.status()
        rt.stop()
    assert len(rx.received) == 1
    assert (status["sent"], status["retried"], status["failed"]) == (0, 0, 1)
    assert status["last_error"].startswith("HTTP 400:")


def test_a_slow_receiver_does_not_hold_the_poll(tmp_path: Path) -> None:
    gate = threading.Event()
    with receiver(gate=gate) as rx:
        rt = build(tmp_path, destination("hook", "webhook", rx.url, "timeout: 30s"), OOM + OTHER_NS)
        result = rt.poll_once()  # returns while the receiver still holds the first request
        assert result.ok and result.new_groups == 2
        assert rx.arrived.wait(5)
        assert not rt.notifier.drain(timeout=0.2)  # the delivery is still in flight
        assert rt.notifier.status()[0]["sent"] == 0
        gate.set()
        assert rt.notifier.drain()
        assert rt.notifier.status()[0]["sent"] == 2
        rt.stop()


def record(
    result: Result,
    *,
    dry_run: bool = False,
    reached: bool = True,
    action: str = "restart-pod",
    decision: str = "allowed",
) -> RemediationRecord:
    return RemediationRecord(
        id="r1",
        time=0.0,
        group_id="g",
        rule="oom",
        action=action,
        namespace="shop",
        kind="Pod",
        name="cart-x",
        decision=decision,
        dry_run=dry_run,
        result=result,
        reached_cluster=reached,
        error="eviction refused: PodDisruptionBudget" if result is Result.FAILED else "",
    )


@pytest.mark.parametrize(
    ("rec", "event"),
    [
        pytest.param(record(Result.SUCCESS), "remediation_acted", id="acted"),
        pytest.param(record(Result.FAILED), "remediation_failed", id="failed"),
        pytest.param(record(Result.SUCCESS, dry_run=True), None, id="dry-run-is-not-acting"),
        pytest.param(record(Result.SUCCESS, reached=False), None, id="nothing-to-do"),
        pytest.param(record(Result.SKIPPED, decision="denied"), None, id="denied"),
        pytest.param(record(Result.SUCCESS, action="none"), None, id="alert-only"),
    ],
)
def test_which_remediations_notify(rec: RemediationRecord, event: str | None) -> None:
    assert remediation_event(rec) == event


def test_a_failed_remediation_is_sent_with_its_error(tmp_path: Path) -> None:
    with receiver() as rx:
        rt = build(tmp_path, destination("hook", "webhook", rx.url, "events: [remediation_failed]"), OOM)
        assert rt.poll_once().ok
        [group] = rt.store.all_groups()
        assert group.priority is Priority.P1
        rt.notifier.remediation(record(Result.FAILED), group)
        assert rt.notifier.drain()
        rt.stop()
    [body] = rx.bodies()
    assert body["event"] == "remediation_failed"
    assert body["remediation"]["error"] == "eviction refused: PodDisruptionBudget"
    assert body["remediation"]["target"] == "shop/Pod/cart-x"
