"""Issue 15, item 8: the banners say what actions will really do, and item 7: poll health shows."""

from __future__ import annotations

import pytest

from sentinel.engine.runtime import Runtime
from tests.ui.conftest import open_page, readable, texts


def _banners(rt: Runtime) -> tuple[list[str], list[str], list[str]]:
    at = open_page("overview")
    return (
        [readable(e.value) for e in at.error],
        [readable(w.value) for w in at.warning],
        [readable(i.value) for i in at.info],
    )


def test_no_cluster_says_decisions_are_recorded_only(demo_rt: Runtime) -> None:
    assert demo_rt.health.cluster != "connected"
    errors, warnings, infos = _banners(demo_rt)
    assert any("No cluster: decisions are recorded only" in w for w in warnings)
    assert not any("dryRun=All" in i for i in infos) and not any("LIVE" in e for e in errors)


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_connected_cluster_shows_dry_run_or_live(demo_rt: Runtime, dry_run: bool) -> None:
    demo_rt.health.cluster = "connected"  # what build_runtime records when the Kubernetes client is built
    if not dry_run:
        demo_rt.update_settings({"dry_run": False}, by="test")
    errors, warnings, infos = _banners(demo_rt)
    assert not any("No cluster" in w for w in warnings)
    live = [e for e in errors if "LIVE: actions change the cluster" in e]
    dry = [i for i in infos if "Dry-run" in i and "dryRun=All" in i]
    assert (bool(live), bool(dry)) == (not dry_run, dry_run)


def test_poll_failures_show_in_a_banner(demo_rt: Runtime) -> None:
    demo_rt.health.consecutive_errors = 3
    demo_rt.health.last_error = "Loki: 503 Ingester not ready"
    text = texts(open_page("overview"))
    assert "Log source (demo file) failing" in text and "503 Ingester not ready" in text
