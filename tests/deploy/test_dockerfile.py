"""deploy/Dockerfile and .dockerignore, read statically: no Docker engine runs where the tests do,
so the image itself is not built here. What can go wrong without a build is checked: the final
stage's user, entrypoint, command, healthcheck and port; that the final stage installs no
compiler; and that every file the build copies exists and is not filtered out of the context.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.deploy import support

DOCKERFILE = support.DEPLOY / "Dockerfile"
CMD = ["run", "--config", "/etc/kube-sentinel/config.yaml", "--rules", "/etc/kube-sentinel/rules.yaml"]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, "dangling line continuation"
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def last(stage: list[tuple[str, str]], word: str) -> str:
    values = [args for ins, args in stage if ins == word]
    assert values, f"no {word} in the final stage"
    return values[-1]


def test_multi_stage_on_python_311_slim() -> None:
    all_stages = stages()
    assert len(all_stages) == 2
    args = dict(a.split("=", 1) for ins, a in instructions() if ins == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert all(s[0][1].startswith("${PYTHON_IMAGE}") for s in all_stages)
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in final_stage()


def test_final_stage_installs_no_build_tools() -> None:
    runs = " ".join(a for i, a in final_stage() if i == "RUN")
    for tool in ("apt-get install", "gcc", "build-essential", "pip install", "curl", "wget"):
        assert tool not in runs, f"final stage runs {tool!r}"


def test_runs_as_uid_10001() -> None:
    assert last(final_stage(), "USER").split(":")[0] == "10001"
    runs = " ".join(a for i, a in final_stage() if i == "RUN")
    assert "--uid 10001" in runs and "chown 10001:10001 /data" in runs


def test_entrypoint_and_cmd_match_the_deployment() -> None:
    assert json.loads(last(final_stage(), "ENTRYPOINT")) == ["kube-sentinel"]
    assert json.loads(last(final_stage(), "CMD")) == CMD
    (container,) = support.find(support.manifest_objects(), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["args"] == CMD


def test_healthcheck_asks_health_with_python() -> None:
    check = last(final_stage(), "HEALTHCHECK")
    assert re.search(r"--start-period=\d+s", check)
    command = json.loads(check.split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8080/health" in command[2]
    compile(command[2], "<healthcheck>", "exec")  # the one-liner is valid Python


def test_exposes_8080() -> None:
    assert last(final_stage(), "EXPOSE") == "8080"


def _copied_sources() -> list[str]:
    sources = []
    for ins, args in instructions():
        if ins != "COPY" or args.startswith("--from"):
            continue
        *srcs, _dest = args.split()
        sources.extend(srcs)
    return sources


@pytest.mark.parametrize("source", _copied_sources())
def test_copied_files_reach_the_build_context(source: str) -> None:
    path = support.ROOT / source
    assert path.exists(), f"COPY {source}: no such file in the repository"
    assert not support.dockerignored(source, support.dockerignore_patterns()), f".dockerignore drops {source}"


@pytest.mark.parametrize(
    "path", [".venv/bin/python", ".git/HEAD", "tests/conftest.py", "sentinel/__pycache__/x.pyc", "data/sentinel.json"]
)
def test_dockerignore_keeps_junk_out(path: str) -> None:
    assert support.dockerignored(path, support.dockerignore_patterns())
