"""Copy the shipped config/config.yaml and config/rules.yaml to where the deploy files need them.

    python deploy/sync_config.py           # write the copies
    python deploy/sync_config.py --check   # exit 1, naming each stale copy, if any is out of date

kustomize only reads files at or below the kustomization's folder (``--load-restrictor
LoadRestrictionsNone`` lifts that, but plain ``kubectl apply -k`` does not pass it, and symlinks
are refused as well), and a Helm chart only ships files inside the chart. So the two files exist
in four forms, all written from ``config/`` by this script and checked by
``tests/deploy/test_manifests.py``:

- ``deploy/kubernetes/config/{config,rules}.yaml``: byte copies, read by the kustomization's
  ``configMapGenerator``;
- ``deploy/kubernetes/configmap.yaml``: the ConfigMap for ``kubectl apply -f``;
- ``deploy/helm/kube-sentinel/values.yaml``: the ``config:`` and ``rules:`` blocks between the
  ``# >>> name`` and ``# <<< name`` marker lines.

Only the standard library and PyYAML: it runs without the package installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"config.yaml": ROOT / "config" / "config.yaml", "rules.yaml": ROOT / "config" / "rules.yaml"}
KUSTOMIZE_COPIES = ROOT / "deploy" / "kubernetes" / "config"
CONFIGMAP = ROOT / "deploy" / "kubernetes" / "configmap.yaml"
HELM_VALUES = ROOT / "deploy" / "helm" / "kube-sentinel" / "values.yaml"
CONFIGMAP_NAME = "kube-sentinel-config"
NAMESPACE = "kube-sentinel"


def block_scalar(key: str, text: str, indent: int) -> str:
    """``key: |`` followed by ``text`` indented: YAML that parses back to exactly ``text``."""
    pad = " " * indent
    body_pad = pad + "  "
    chomp = "" if text.endswith("\n") and not text.endswith("\n\n") else ("+" if text.endswith("\n") else "-")
    indicator = "2" if text[:1] == " " else ""
    lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    body = "".join(f"{body_pad}{line}\n" if line else "\n" for line in lines)
    out = f"{pad}{key}: |{indicator}{chomp}\n{body}"
    check = yaml.safe_load("\n".join(line[indent:] for line in out.split("\n")))
    if check != {key: text}:  # something a literal block cannot hold (e.g. trailing blanks): quote it
        quoted = yaml.safe_dump({key: text}, default_style='"', width=1 << 30).rstrip("\n")
        out = f"{pad}{quoted}\n"
    return out


def read_sources() -> dict[str, str]:
    missing = [str(p.relative_to(ROOT)) for p in SOURCES.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"sync_config: missing {', '.join(missing)}")
    return {name: path.read_text(encoding="utf-8") for name, path in SOURCES.items()}


def render_configmap(files: dict[str, str]) -> str:
    head = (
        "# Generated from config/config.yaml and config/rules.yaml by `python deploy/sync_config.py`:\n"
        "# edit those, not this. For `kubectl apply -f`; the kustomization generates its own.\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        f"  name: {CONFIGMAP_NAME}\n"
        f"  namespace: {NAMESPACE}\n"
        "  labels:\n"
        "    app.kubernetes.io/name: kube-sentinel\n"
        "data:\n"
    )
    return head + "".join(block_scalar(name, text, 2) for name, text in files.items())


def render_values(current: str, files: dict[str, str]) -> str:
    out = current
    for key, name in (("config", "config.yaml"), ("rules", "rules.yaml")):
        pattern = re.compile(rf"(^# >>> {key}\b[^\n]*\n)(.*?)(^# <<< {key}\b[^\n]*$)", re.M | re.S)
        match = pattern.search(out)
        if match is None:
            raise SystemExit(f"sync_config: {HELM_VALUES.relative_to(ROOT)} lacks the '# >>> {key}' markers")
        out = out[: match.start(2)] + block_scalar(key, files[name], 0) + out[match.end(2) :]
    return out


def planned() -> dict[Path, str]:
    """Every derived file and the text it should have."""
    files = read_sources()
    plan = {KUSTOMIZE_COPIES / name: text for name, text in files.items()}
    plan[CONFIGMAP] = render_configmap(files)
    plan[HELM_VALUES] = render_values(HELM_VALUES.read_text(encoding="utf-8"), files)
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale copies; exit 1 if any")
    args = parser.parse_args(argv)
    stale = []
    for path, text in planned().items():
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(str(path.relative_to(ROOT)))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "stale" if args.check else "wrote"
    for name in stale:
        sys.stderr.write(f"{verb} {name}\n")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
