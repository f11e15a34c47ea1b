"""What the deploy tests share: paths, rendering, and the Kubernetes client's models."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.deploy import gotemplate

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZE_DIR = DEPLOY / "kubernetes"
CHART_DIR = DEPLOY / "helm" / "kube-sentinel"
CONFIG_FILES = {name: ROOT / "config" / name for name in ("config.yaml", "rules.yaml")}

# What `kubectl apply -f` applies, in order, on the README's "individual manifests" path.
MANIFEST_FILES = ("namespace.yaml", "rbac.yaml", "configmap.yaml", "pvc.yaml", "deployment.yaml", "service.yaml")

Obj = dict[str, Any]


def load_docs(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kubectl() -> str | None:
    return shutil.which("kubectl")


def helm() -> str | None:
    """The helm binary: $HELM if set, else helm on PATH."""
    explicit = os.environ.get("HELM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("helm")


@functools.cache
def kustomize_text() -> str:
    exe = kubectl()
    assert exe is not None
    # No --load-restrictor flag: exactly what `kubectl apply -k deploy/kubernetes/` will do.
    done = subprocess.run(
        [exe, "kustomize", str(KUSTOMIZE_DIR)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize failed:\n{done.stderr}"
    return done.stdout


def kustomize_objects() -> list[Obj]:
    return load_docs(kustomize_text())


def manifest_objects() -> list[Obj]:
    return [doc for name in MANIFEST_FILES for doc in load_docs((KUSTOMIZE_DIR / name).read_text())]


def chart_context(release: str, namespace: str, values: Obj | None = None) -> Obj:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    return {
        "Values": values if values is not None else yaml.safe_load((CHART_DIR / "values.yaml").read_text()),
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
    }


def render_chart_substitute(release: str, namespace: str, values: Obj | None = None) -> list[Obj]:
    context = chart_context(release, namespace, values)
    objs: list[Obj] = []
    for path in sorted((CHART_DIR / "templates").glob("*.yaml")):
        objs.extend(load_docs(gotemplate.render(path.read_text(), context)))
    return objs


def render_chart_helm(release: str, namespace: str, *extra: str) -> list[Obj]:
    exe = helm()
    assert exe is not None
    done = subprocess.run(
        [exe, "template", release, str(CHART_DIR), "--namespace", namespace, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
    return load_docs(done.stdout)


def model_name(obj: Obj) -> str:
    version = obj["apiVersion"].rsplit("/", 1)[-1]
    return version[0].upper() + version[1:] + obj["kind"]


def to_model(obj: Obj) -> Any:
    """The client's model for ``obj``; AssertionError naming any field the model does not know.

    ``ApiClient`` deserialization silently drops unknown keys, so the object is serialized back and
    compared: a misspelt field (``readinesProbe``) or one at the wrong level shows up as a loss.
    """
    name = model_name(obj)
    assert hasattr(client, name), f"no model {name} in the kubernetes client"
    api = client.ApiClient()
    model = api._ApiClient__deserialize(obj, name)  # type: ignore[attr-defined]
    back = api.sanitize_for_serialization(model)
    lost = sorted(_differences(obj, back))
    assert not lost, f"{obj['kind']}/{obj['metadata'].get('name')}: fields the model dropped or changed: {lost}"
    return model


def _differences(a: Any, b: Any, path: str = "") -> Iterable[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            if key not in b:
                yield f"{path}.{key}"
            else:
                yield from _differences(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _differences(x, y, f"{path}[{i}]")
    elif a != b:
        yield path or "."


def find(objs: Iterable[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def rbac_triples(objs: Iterable[Obj], kinds: Iterable[str] = ("ClusterRole", "Role")) -> list[tuple[str, str, str]]:
    """Every (group, resource, verb) the roles grant, one entry per grant (duplicates kept)."""
    triples = []
    for obj in objs:
        if obj["kind"] not in kinds:
            continue
        for rule in obj.get("rules", []):
            assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"unexpected rule keys: {sorted(rule)}"
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        triples.append((group, resource, verb))
    return triples


# --- .dockerignore -----------------------------------------------------------------------------


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
            continue
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether ``path`` (relative, with /) is left out of the build context: last match wins,
    and a pattern matching a parent folder matches everything under it (Docker's rules)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        regex = _ignore_regex(raw.removeprefix("!").strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
