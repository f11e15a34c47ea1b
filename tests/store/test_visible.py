"""Issue 11: the store visible when it fails, on /ready, /metrics and the console, over real HTTP."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.api.app import create_app
from sentinel.bootstrap import build_runtime
from sentinel.engine.runtime import Runtime
from sentinel.errors import StoreError
from sentinel.sources.files import FileSource
from sentinel.store.tinydb import TinyDBStore
from tests.api.conftest import AUTH, CONFIG, DEMO, TOKEN, Served, serve


def runtime_over(store: TinyDBStore, tmp: Path) -> Runtime:
    config = tmp / "config.yaml"
    config.write_text(CONFIG.format(rules=DEMO / "rules.yaml"), encoding="utf-8")
    return build_runtime(
        config,
        source=FileSource(DEMO / "logs.jsonl", live=True),
        store=store,
        env={"KUBE_SENTINEL_API_TOKEN": TOKEN},
    )


@pytest.fixture
def corrupt_start(tmp_path: Path) -> Iterator[Served]:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "db.json").write_text('{"groups": {"1": {"id": "a", "count": "3"}}}')
    rt = runtime_over(TinyDBStore(tmp_path / "data" / "db.json", shards=8), tmp_path)
    assert rt.poll_once().ok
    yield from serve(create_app(rt), rt)


def metric(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name)]


def test_a_store_that_started_empty_says_so_until_acknowledged(corrupt_start: Served) -> None:
    api = corrupt_start
    r = api.client.get("/ready")
    assert r.status_code == 200  # the console must stay reachable to read and acknowledge it
    (notice,) = r.json()["notices"]
    assert "started empty" in notice and ".corrupt-" in notice and "field 'namespace' is missing" in notice
    aside = next(p for p in (Path(api.runtime.store.path).parent).iterdir() if ".corrupt-" in p.name)  # type: ignore[attr-defined]
    (line,) = metric(api.client.get("/metrics").text, "kube_sentinel_store_started_empty")
    assert line == f'kube_sentinel_store_started_empty{{moved_aside="{aside}"}} 1.0'
    assert api.client.post("/api/store/acknowledge").status_code == 401  # a writer's token is needed
    r = api.client.post("/api/store/acknowledge", headers={**AUTH, "X-Sentinel-User": "ana"})
    assert r.status_code == 200 and r.json() == {"acknowledged": 1}
    assert api.client.get("/ready").json()["notices"] == []
    (line,) = metric(api.client.get("/metrics").text, "kube_sentinel_store_started_empty")
    assert line.endswith(" 0.0")
    assert aside.exists()  # acknowledging keeps the old file where it is


def test_failing_writes_show_on_metrics_and_fail_ready(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "data" / "db.json", shards=8)
    rt = runtime_over(store, tmp_path)
    assert rt.poll_once().ok
    groups = store.folder / "groups"
    shutil.rmtree(groups)
    groups.write_text("in the way: every shard write fails, as on a full disk")
    served = serve(create_app(rt), rt)
    api = next(served)
    try:
        assert api.client.get("/ready").status_code == 200
        for _ in range(3):
            g = rt.store.all_groups()[0]
            g.status_reason = "changed"
            rt.store.put_group(g)
            with pytest.raises(StoreError):
                rt.store.flush()
        text = api.client.get("/metrics").text
        assert metric(text, "kube_sentinel_store_write_errors_total") == ["kube_sentinel_store_write_errors_total 3.0"]
        (age,) = metric(text, "kube_sentinel_store_last_write_age_seconds")
        assert float(age.split()[-1]) >= 0
        api.runtime.health.polls += 1  # a new poll happened: /ready is computed afresh, not served from its cache
        r = api.client.get("/ready")
        assert r.status_code == 503 and "3 writes failed in a row" in r.json()["failing"]["store"]
        groups.unlink()
        rt.store.flush()
        api.runtime.health.polls += 1
        assert api.client.get("/ready").status_code == 200
    finally:
        served.close()


def test_console_banner_names_the_moved_file_until_acknowledged(tmp_path: Path) -> None:
    from sentinel.engine.runtime import install, uninstall
    from tests.ui.conftest import build_runtime, no_exception, open_page, texts

    (tmp_path / "db.json").write_text("{ truncated by a crash")
    rt = build_runtime(TinyDBStore(tmp_path / "db.json", shards=8))  # type: ignore[arg-type]
    install(rt)
    try:
        at = open_page("overview")  # the sidebar's banner and the page's own
        no_exception(at)
        (aside,) = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
        shown = [e.value for e in at.error]  # the sidebar's and the page's
        assert len([v for v in shown if "The store started empty" in v]) == 2
        assert all(aside.name.replace("-", "\\-").replace(".", "\\.") in v for v in shown if "started empty" in v)
        at.button(key="store-ack-page").click().run()
        no_exception(at)
        assert rt.store.health().notices == []
        assert "The store started empty" not in texts(at)
    finally:
        uninstall()
        rt.stop()
