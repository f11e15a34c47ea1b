"""The command line: check, analyze, run --once, demo --once; exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sentinel.cli import main
from tests.peers.kube import KubePeer
from tests.peers.loki import LokiPeer

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream"
DEMO_LOGS = ROOT / "sentinel" / "demo" / "logs.jsonl"


def test_check_valid_files_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["check", "--config", str(UPSTREAM / "upstream-config.yaml"), "--rules", str(UPSTREAM / "upstream-rules.yaml")]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "config: ok" in out and "rules: ok" in out and "15 enabled" in out


def test_check_invalid_rules_exit_2_names_file_and_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: bad\n    match: {pattern: '[z-a]'}\n    priority: P1\n")
    code = main(["check", "--config", str(ROOT / "config" / "config.yaml"), "--rules", str(rules)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(rules) in err and "rules[0] (bad).match.pattern" in err and "invalid character class range: z-a" in err


def test_check_invalid_config_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("loki:\n  poll_interval: -1s\n")
    assert main(["check", "--config", str(cfg), "--rules", str(UPSTREAM / "upstream-rules.yaml")]) == 2
    assert "loki.poll_interval" in capsys.readouterr().err


def test_check_loki_probes_ready_and_a_query(
    tmp_path: Path, loki_peer: LokiPeer, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"loki:\n  url: {loki_peer.url}\nrules_file: {ROOT / 'config' / 'rules.yaml'}\n")
    assert main(["check", "--config", str(cfg), "--loki"]) == 0
    assert "loki:" in capsys.readouterr().out
    assert loki_peer.requests_to("/ready") and loki_peer.requests_to("/loki/api/v1/query_range")


def test_check_loki_unreachable_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"loki:\n  url: http://127.0.0.1:9\n  timeout: 1s\nrules_file: {ROOT / 'config' / 'rules.yaml'}\n")
    assert main(["check", "--config", str(cfg), "--loki"]) == 1
    assert "loki: FAILED" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_analyze_formats(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(DEMO_LOGS), "--format", fmt, "--top", "5"]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        data = json.loads(out)
        assert data["lines"] == 1817 and len(data["top"]) == 5
        assert data["top"][0]["priority"] == "P1"
    elif fmt == "csv":
        lines = out.strip().splitlines()
        assert lines[0].startswith("priority,count,rule") and len(lines) == 6
    else:
        assert "1817 lines ->" in out and "crashloop-backoff" in out


def test_analyze_explain_one_object_per_line_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        "ERROR failed to connect to 10.0.0.1:5432\nERROR failed to connect to 10.0.0.2:5432\nall fine\npanic: boom\n"
    )
    out = tmp_path / "explain.jsonl"
    assert main(["analyze", str(log), "--explain", str(out), "--namespace", "shop"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4
    assert rows[0]["group"] == rows[1]["group"] and rows[0]["template"] == rows[1]["template"]
    assert rows[2]["rule"] == "default" and rows[2]["priority"] == "P4"
    assert rows[3]["rule"] == "panic" and rows[3]["priority"] == "P1"
    assert set(rows[0]) == {"group", "template", "rule", "priority"}


def test_run_once_success_and_failure(tmp_path: Path, loki_peer: LokiPeer, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time_ns()
    loki_peer.add_lines(
        {"namespace": "shop", "pod": "api-0"}, [(now - 10**9 * i, f"ERROR boom {i}") for i in range(1, 21)]
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"loki:\n  url: {loki_peer.url}\n  ingest_delay: 0s\nkubernetes:\n  in_cluster: false\n  kubeconfig: {tmp_path / 'none'}\n"
        f"rules_file: {ROOT / 'config' / 'rules.yaml'}\nstore:\n  type: memory\n"
    )
    assert main(["run", "--config", str(cfg), "--once", "--store", str(tmp_path / "s.json")]) == 0
    assert "20 lines" in capsys.readouterr().out
    assert (tmp_path / "s.json").exists()
    loki_peer.fail_next(400, times=1, body="parse error at line 1, col 1: syntax error")
    assert main(["run", "--config", str(cfg), "--once"]) == 1
    assert "parse error" in capsys.readouterr().err


def test_analyze_explain_names_final_groups_and_bad_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "explain.jsonl"
    assert main(["analyze", str(DEMO_LOGS), "--format", "json", "--top", "500", "--explain", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    reported = {row["group"] for row in report["top"]}
    explained = {json.loads(line)["group"] for line in out.read_text().splitlines()}
    assert explained == reported  # after template merges, every line points at a reported group
    assert main(["analyze", str(DEMO_LOGS), "--explain", str(tmp_path / "no" / "such" / "dir.jsonl")]) == 2
    assert "cannot write" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["analyze", str(DEMO_LOGS), "--top", "0"])
    assert info.value.code == 2


def test_run_with_invalid_config_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("remediation:\n  enabled: sometimes\n")
    assert main(["run", "--config", str(cfg), "--once"]) == 2
    assert "remediation.enabled" in capsys.readouterr().err


def test_demo_once_fills_the_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--once"]) == 0
    out = capsys.readouterr().out
    assert "poll ok" in out and "P1=" in out


def kubeconfig_for(tmp_path: Path, url: str, token: str) -> Path:
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: peer, cluster: {{server: "{url}"}}}}]
users: [{{name: me, user: {{token: "{token}"}}}}]
contexts: [{{name: peer, context: {{cluster: peer, user: me}}}}]
current-context: peer
"""
    )
    return kc


def test_check_cluster_reports_missing_permissions(
    tmp_path: Path, kube_peer: KubePeer, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = kubeconfig_for(tmp_path, kube_peer.url, kube_peer.token or "")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"kubernetes:\n  in_cluster: false\n  kubeconfig: {kc}\nrules_file: {ROOT / 'config' / 'rules.yaml'}\n"
    )
    assert main(["check", "--config", str(cfg), "--cluster"]) == 0
    out = capsys.readouterr().out
    assert "MISSING" not in out and "permissions granted" in out
    assert "ok      create  pods/eviction" in out  # restart-pod evicts
    kube_peer.deny("patch", "deployments/scale")
    kube_peer.deny("delete", "pods")
    kube_peer.deny("create", "pods/eviction")
    assert main(["check", "--config", str(cfg), "--cluster"]) == 1
    captured = capsys.readouterr()
    assert "MISSING patch   deployments/scale.apps  (needed by scale-down, scale-up)" in captured.out
    assert "MISSING delete  pods  (needed by delete-stuck-pods, restart-pod)" in captured.out
    assert "MISSING create  pods/eviction  (needed by restart-pod)" in captured.out
    assert "rbac.yaml" in captured.err and "params: {method: delete}" in captured.err
