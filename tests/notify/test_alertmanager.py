"""A notification reaches the REAL Prometheus Alertmanager (Debian's ``prometheus-alertmanager``).

The test starts it with a temporary config and storage path on a free port on 127.0.0.1, lets the
runtime's poll fire, then reads the alert back with ``GET /api/v2/alerts``: its labels and
annotations are what Alertmanager's routing, silences and inhibitions will see. ``.ci/run``
installs the package and refuses to run without it; a machine without it skips this module.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.notify.helpers import OOM, REFUSED, build, destination

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager is not installed (.ci/run installs it)")

AM_CONFIG = """\
route:
  receiver: nowhere
  group_by: [alertname, group_id]
receivers:
  - name: nowhere
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    assert BINARY is not None
    home = tmp_path / "am"
    (home / "data").mkdir(parents=True)
    (home / "alertmanager.yml").write_text(AM_CONFIG, encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (home / "log.txt").open("wb")
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={home / 'alertmanager.yml'}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("alertmanager did not start: " + (home / "log.txt").read_text()[-2000:])
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_the_alert_arrives_with_labels_and_annotations(tmp_path: Path, alertmanager: str) -> None:
    rt = build(tmp_path / "rt", destination("am", "alertmanager", alertmanager, "min_priority: P1"), OOM + REFUSED)
    assert rt.poll_once().ok
    assert rt.notifier.drain()
    [status] = rt.notifier.status()
    rt.stop()
    assert (status["sent"], status["failed"]) == (1, 0), status  # the P3 group is not selected

    alerts = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
    assert len(alerts) == 1, alerts
    [alert] = alerts
    [group] = [g for g in rt.store.all_groups() if g.rule == "oom"]
    assert alert["labels"] == {
        "alertname": "KubeSentinelErrorGroup",
        "group_id": group.id,
        "priority": "P1",
        "namespace": "shop",
        "workload": "cart",
        "container": "cart",
        "rule": "oom",
        "source": "kube-sentinel",
    }
    notes = alert["annotations"]
    assert notes["summary"] == "[P1] new error: shop/cart"
    assert notes["event"] == "new"
    assert notes["template"] == group.template
    assert notes["count"] == "3"
    assert notes["samples"] == f"{OOM[1]['line']}\n{OOM[2]['line']}"
    assert notes["link"] == f"https://sentinel.example.com/errors/{group.id}"
    assert alert["generatorURL"] == notes["link"]
    assert alert["status"]["state"] == "active"
