"""Score ``kube-sentinel analyze`` on the labelled Kubernetes corpus (issue 12), one part at a time.

    python -m tests.bench.k8s_corpus.score --part tune [--json out.json]
    python -m tests.bench.k8s_corpus.score --part heldout     # report only: never tune on it

For each part the generator's lines are written as JSONL and given to the real CLI twice, in a
subprocess, exactly as a user would run it:

* ``analyze FILE --rules config/rules.yaml --explain OUT`` (the shipped configuration):
  **GA** (grouping accuracy, ``tests/bench/loghub/ga.py``'s own ``grouping_accuracy``) of the
  ``group`` it gives each line against the true key ``namespace/workload/container/template``, and
  **priority agreement**, the share of lines whose ``priority`` equals the SRE's label;
* ``analyze FILE --rules tests/fixtures/upstream/upstream-rules.yaml --explain OUT``:
  **rule agreement**, the share of lines whose ``rule`` equals the Go tool's choice, computed by
  :func:`go_rule` below.

The Go tool's choice (reference implementation)
-----------------------------------------------
Read from the Go tool's source (``internal/rules/engine.go`` and ``internal/loki/poller.go`` of
the kube-sentinel Go repository; its README: "first match wins"):

1. ``Message = extractMessage(raw)``: the first of the JSON fields ``message``, ``msg``, ``error``,
   ``err`` matched by the regex ``"<field>"\\s*:\\s*"([^"]*)"`` anywhere in the raw line (so still
   JSON-escaped, and cut at the first ``"``); else the capture of
   ``(?i)\\b(?:error|fatal|panic|exception|fail(?:ed|ure)?)\\b[:\\s]+(.+)``; else of
   ``\\d{4}-\\d{2}-\\d{2}[T\\s]\\d{2}:\\d{2}:\\d{2}[^\\s]*\\s+\\w+\\s+(.+)`` (both trimmed); else the raw line,
   cut to 500 bytes plus ``...``.
2. Rules are tried in file order. Every rule takes part: the Go loader turns ``enabled: false``
   into ``true`` (``internal/rules/loader.go``: "Default enabled to true"). A rule matches when its
   ``namespaces`` allow the namespace (``!ns`` negates; a list of only negations allows the rest),
   its ``labels`` match (exact, ``!value`` negated, ``~regex``), its RE2 ``pattern`` matches the
   Message **or** the raw line (Go's ``regexp.MatchString``: unanchored search, ``.`` stops at a
   newline), and, when it has ``keywords``, one of them occurs in ``lower(Message + " " + raw)``.
3. The first matching rule wins; when none matches, the rule is ``default`` (priority P4).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2
import yaml

from tests.bench.k8s_corpus.generate import LINES, PARTS, Line, generate, groups, load_part, write_jsonl

ROOT = Path(__file__).resolve().parents[3]
SHIPPED_RULES = ROOT / "config" / "rules.yaml"
UPSTREAM_RULES = ROOT / "tests" / "fixtures" / "upstream" / "upstream-rules.yaml"
GA_PY = ROOT / "tests" / "bench" / "loghub" / "ga.py"

# --- the Go tool's choice -----------------------------------------------------------------------

_GO_LOG_PATTERNS = (
    re2.compile(r"(?i)\b(?:error|fatal|panic|exception|fail(?:ed|ure)?)\b[:\s]+(.+)"),
    re2.compile(r"\d{4}-\d{2}-\d{2}[T\s]\d{2}:\d{2}:\d{2}[^\s]*\s+\w+\s+(.+)"),
)
_GO_JSON_FIELDS = tuple(re2.compile(rf'"{f}"\s*:\s*"([^"]*)"') for f in ("message", "msg", "error", "err"))
_GO_SPACE = " \t\n\v\f\r\x85\xa0"


def go_message(line: str) -> str:
    """``extractMessage`` of the Go tool's poller."""
    for rx in _GO_JSON_FIELDS:
        m = rx.search(line)
        if m is not None and m.group(1) != "":
            return str(m.group(1))
    for rx in _GO_LOG_PATTERNS:
        m = rx.search(line)
        if m is not None:
            return str(m.group(1)).strip(_GO_SPACE)
    raw = line.encode()
    if len(raw) > 500:
        return raw[:500].decode("utf-8", "ignore") + "..."
    return line


@dataclass(frozen=True)
class GoRule:
    name: str
    pattern: Any  # compiled RE2, or None
    keywords: tuple[str, ...]
    namespaces: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]


def load_go_rules(path: Path = UPSTREAM_RULES) -> list[GoRule]:
    """The rules of a Go-format rules file, in file order, as the Go loader keeps them."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = []
    for r in doc.get("rules") or []:
        # no check of `enabled`: the Go loader sets every rule's Enabled to true (ParseRules:
        # "if !rule.Enabled { rule.Enabled = true }"), so `enabled: false` does not turn a rule off
        match = r.get("match") or {}
        pattern = match.get("pattern") or ""
        out.append(
            GoRule(
                name=str(r["name"]),
                pattern=re2.compile(pattern) if pattern else None,
                keywords=tuple(str(k).lower() for k in match.get("keywords") or ()),
                namespaces=tuple(str(n) for n in match.get("namespaces") or ()),
                labels=tuple((str(k), str(v)) for k, v in (match.get("labels") or {}).items()),
            )
        )
    return out


def _go_namespace_ok(allowed: tuple[str, ...], namespace: str) -> bool:
    for ns in allowed:
        if ns.startswith("!"):
            if namespace == ns[1:]:
                return False
        elif namespace == ns:
            return True
    return all(ns.startswith("!") for ns in allowed)


def _go_labels_ok(matchers: tuple[tuple[str, str], ...], labels: Mapping[str, str]) -> bool:
    for key, expected in matchers:
        actual = labels.get(key)
        if expected.startswith("!"):
            if actual == expected[1:]:
                return False
            continue
        if actual is None:
            return False
        if expected.startswith("~"):
            if re2.compile(expected[1:]).search(actual) is None:
                return False
            continue
        if actual != expected:
            return False
    return True


def go_rule(rules: list[GoRule], raw: str, labels: Mapping[str, str]) -> str:
    """The rule name the Go tool gives this raw line (``default`` when none matches)."""
    message = go_message(raw)
    namespace = labels.get("namespace", "")
    for r in rules:
        if r.namespaces and not _go_namespace_ok(r.namespaces, namespace):
            continue
        if r.labels and not _go_labels_ok(r.labels, labels):
            continue
        if r.pattern is not None and r.pattern.search(message) is None and r.pattern.search(raw) is None:
            continue
        if r.keywords:
            combined = (message + " " + raw).lower()
            if not any(k in combined for k in r.keywords):
                continue
        return r.name
    return "default"


# --- running the product ------------------------------------------------------------------------


def analyze(jsonl: Path, rules: Path, out: Path) -> list[dict[str, Any]]:
    """``kube-sentinel analyze JSONL --rules RULES --explain OUT`` in a subprocess; OUT's rows."""
    proc = subprocess.run(
        [sys.executable, "-m", "sentinel", "analyze", str(jsonl), "--rules", str(rules), "--explain", str(out)]
        + ["--format", "json", "--top", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"analyze --rules {rules.name} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines() if x.strip()]


def _ga_module() -> Any:
    spec = importlib.util.spec_from_file_location("k8s_corpus_ga", GA_PY)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {GA_PY}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _share(hits: int, n: int) -> float:
    return hits / n if n else 0.0


def score_lines(
    lines: list[Line], ours: list[dict[str, Any]], ours_go: list[dict[str, Any]], go: list[str]
) -> dict[str, Any]:
    """Every figure for one part, from the truth, the two ``--explain`` outputs and the Go choice."""
    if not (len(lines) == len(ours) == len(ours_go) == len(go)):
        raise ValueError(f"{len(lines)} lines but {len(ours)}/{len(ours_go)}/{len(go)} answers")
    ga_mod = _ga_module()
    truth = [x.truth for x in lines]
    pred = [o["group"] for o in ours]
    ga, n_pred, n_true = ga_mod.grouping_accuracy(truth, pred)
    prio_ok = [o["priority"] == x.priority for o, x in zip(ours, lines, strict=True)]
    rule_ok = [o["rule"] == g for o, g in zip(ours_go, go, strict=True)]

    fam: dict[str, dict[str, Any]] = defaultdict(lambda: {"lines": 0, "priority_ok": 0, "rule_ok": 0})
    for x, p, r in zip(lines, prio_ok, rule_ok, strict=True):
        f = fam[x.family]
        f["lines"] += 1
        f["priority_ok"] += p
        f["rule_ok"] += r
    # true groups split over several predicted keys; predicted keys that merge several true groups
    pred_of: dict[str, Counter[str]] = defaultdict(Counter)
    truth_of: dict[str, Counter[str]] = defaultdict(Counter)
    for t, p in zip(truth, pred, strict=True):
        pred_of[t][p] += 1
        truth_of[p][t] += 1
    # the same figures with every true group weighing the same (the line-weighted ones follow the
    # few loudest groups of the Zipf-like draw)
    exact = sum(1 for t, v in pred_of.items() if len(v) == 1 and len(truth_of[next(iter(v))]) == 1)
    per_group: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for x, p, r in zip(lines, prio_ok, rule_ok, strict=True):
        g = per_group[x.truth]
        g[0] += 1
        g[1] += p
        g[2] += r
    split = sorted(((len(v), t) for t, v in pred_of.items() if len(v) > 1), reverse=True)
    merged = sorted(((len(v), p, sorted(v)) for p, v in truth_of.items() if len(v) > 1), reverse=True)
    template_of = {x.truth: x.template for x in lines}
    wrong_prio: Counter[tuple[str, str, str]] = Counter()
    for x, o in zip(lines, ours, strict=True):
        if o["priority"] != x.priority:
            wrong_prio[(x.template, x.priority, o["priority"])] += 1
    wrong_rule: Counter[tuple[str, str, str]] = Counter()
    for x, o, g in zip(lines, ours_go, go, strict=True):
        if o["rule"] != g:
            wrong_rule[(x.template, g, o["rule"])] += 1
    # numbers only (safe to read for the held-out part): per family, GA of its lines, true and
    # predicted groups, and the SRE-priority -> our-priority confusion counts
    fam_ga: dict[str, dict[str, Any]] = {}
    by_family: dict[str, list[int]] = defaultdict(list)
    for i, x in enumerate(lines):
        by_family[x.family].append(i)
    for f, idx in sorted(by_family.items()):
        g, npred, ntrue = ga_mod.grouping_accuracy([truth[i] for i in idx], [pred[i] for i in idx])
        confusion: Counter[str] = Counter(f"{lines[i].priority}->{ours[i]['priority']}" for i in idx)
        fam_ga[f] = {"ga": g, "pred_groups": npred, "true_groups": ntrue, "confusion": dict(sorted(confusion.items()))}
    confusion_all = Counter(f"{x.priority}->{o['priority']}" for x, o in zip(lines, ours, strict=True))
    return {
        "lines": len(lines),
        "true_groups": n_true,
        "per_family_grouping": fam_ga,
        "priority_confusion": dict(sorted(confusion_all.items())),
        "pred_groups": n_pred,
        "ga": ga,
        "priority_agreement": _share(sum(prio_ok), len(lines)),
        "rule_agreement": _share(sum(rule_ok), len(lines)),
        "groups_exact": _share(exact, n_true),
        "priority_agreement_per_group": sum(g[1] / g[0] for g in per_group.values()) / len(per_group),
        "rule_agreement_per_group": sum(g[2] / g[0] for g in per_group.values()) / len(per_group),
        "per_family": {
            k: {
                "lines": v["lines"],
                "priority_agreement": _share(v["priority_ok"], v["lines"]),
                "rule_agreement": _share(v["rule_ok"], v["lines"]),
            }
            for k, v in sorted(fam.items())
        },
        "split_groups": [{"truth": t, "template": template_of[t], "into": n} for n, t in split[:25]],
        "merged_groups": [{"pred": p[:80], "truths": ts, "n": n} for n, p, ts in merged[:25]],
        "wrong_priority": [
            {"template": t, "sre": s, "ours": o, "lines": n} for (t, s, o), n in wrong_prio.most_common(30)
        ],
        "wrong_rule": [{"template": t, "go": g, "ours": o, "lines": n} for (t, g, o), n in wrong_rule.most_common(30)],
    }


def score_part(
    name: str,
    *,
    lines: int = LINES,
    shipped_rules: Path = SHIPPED_RULES,
    upstream_rules: Path = UPSTREAM_RULES,
) -> dict[str, Any]:
    part = load_part(name)
    generated = generate(part, lines=lines)
    rules = load_go_rules(upstream_rules)
    go = [go_rule(rules, x.line, x.labels) for x in generated]
    with tempfile.TemporaryDirectory(prefix=f"k8s-corpus-{name}-") as tmp:
        src = Path(tmp) / f"{name}.jsonl"
        write_jsonl(generated, src)
        t0 = time.perf_counter()
        ours = analyze(src, shipped_rules, Path(tmp) / "ours.jsonl")
        seconds = time.perf_counter() - t0
        ours_go = analyze(src, upstream_rules, Path(tmp) / "ours_go.jsonl")
    res = score_lines(generated, ours, ours_go, go)
    if name == "heldout":
        # never tune on held-out: keep its numbers, drop every text that names a template or group
        for k in ("split_groups", "merged_groups", "wrong_priority", "wrong_rule"):
            res[k] = len(res[k])
    res.update(
        part=name,
        seed=part.seed,
        templates=len(part.templates),
        families=len(part.families),
        groups_defined=len(groups(part)),
        analyze_seconds=seconds,
        go_rule_mix=dict(Counter(go).most_common()),
    )
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=sorted(PARTS), default="tune")
    ap.add_argument("--lines", type=int, default=LINES)
    ap.add_argument("--json", default=None, help="write every figure here")
    a = ap.parse_args(argv)
    res = score_part(a.part, lines=a.lines)
    print(
        f"{a.part}: {res['lines']} lines, {res['templates']} templates, {res['families']} families; "
        f"GA {res['ga']:.3f} ({res['pred_groups']} groups for {res['true_groups']}); "
        f"priority {res['priority_agreement'] * 100:.1f}%; Go rule {res['rule_agreement'] * 100:.1f}%; "
        f"per true group: {res['groups_exact'] * 100:.1f}% exact, priority "
        f"{res['priority_agreement_per_group'] * 100:.1f}%, Go rule {res['rule_agreement_per_group'] * 100:.1f}%"
    )
    for k, v in res["per_family"].items():
        g = res["per_family_grouping"][k]
        print(
            f"  {k:18s} {v['lines']:6d} lines  GA {g['ga']:.3f} ({g['pred_groups']}/{g['true_groups']})  "
            f"priority {v['priority_agreement'] * 100:5.1f}%  rule {v['rule_agreement'] * 100:5.1f}%  "
            + " ".join(f"{c}:{n}" for c, n in g["confusion"].items() if c[:2] != c[-2:])
        )
    print("  priority confusion (SRE->ours): " + " ".join(f"{c}:{n}" for c, n in res["priority_confusion"].items()))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
