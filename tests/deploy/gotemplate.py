"""A minimal Go-template renderer for the Helm chart, for machines without a helm binary.

It knows only what ``deploy/helm/kube-sentinel/templates`` uses and refuses everything else
loudly (``TemplateError``), so a template that grows a construct this cannot render fails the test
instead of rendering wrongly:

- actions ``{{ ... }}`` with ``{{-`` / ``-}}`` whitespace trimming, and ``{{/* comments */}}``;
- fields ``.Values.a.b``, ``.Release.Name|Namespace|Service``, ``.Chart.Name|Version|AppVersion``;
- string and integer literals;
- ``if`` / ``else`` / ``end`` with Go's truthiness (false, 0, nil, "" and empty collections);
- pipelines ``x | f args`` (the piped value is the last argument) over the functions
  ``quote``, ``default``, ``indent``, ``nindent``, ``toYaml`` and ``sha256sum``, as Helm defines them.

A missing value is an error here, where Helm would print ``<no value>``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml


class TemplateError(Exception):
    pass


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\|\s*|[^\s|]+')


@dataclass
class _If:
    cond: str
    then: list[Any] = field(default_factory=list)
    orelse: list[Any] = field(default_factory=list)


@dataclass
class _Action:
    expr: str


def _truthy(v: Any) -> bool:
    return not (v is None or v is False or v == 0 or (isinstance(v, str | list | dict | tuple) and not v))


def _text(v: Any) -> str:
    if v is None:
        raise TemplateError("value is missing (helm would print <no value>)")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, str | int | float):
        return str(v)
    raise TemplateError(f"cannot print a {type(v).__name__} without toYaml")


def _indent(n: int, s: Any) -> str:
    pad = " " * int(n)
    return pad + _text(s).replace("\n", "\n" + pad)


def _to_yaml(v: Any) -> str:
    # Helm's toYaml: sigs.k8s.io/yaml (keys sorted), trailing newline removed.
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "quote": lambda *args: " ".join(json.dumps(_text(a)) for a in args),
    "default": lambda d, v=None: v if _truthy(v) else d,
    "indent": _indent,
    "nindent": lambda n, s: "\n" + _indent(n, s),
    "toYaml": _to_yaml,
    "sha256sum": lambda s: hashlib.sha256(_text(s).encode()).hexdigest(),
}


def _parse(source: str) -> list[Any]:
    # First pass: split into text and actions, applying the trim markers.
    pieces: list[Any] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(source):
        text = source[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        pieces.append(text)
        pieces.append(("action", m.group(2).strip()))
        trim_next = bool(m.group(3))
        pos = m.end()
    tail = source[pos:]
    pieces.append(tail.lstrip() if trim_next else tail)
    if "{{" in "".join(p for p in pieces if isinstance(p, str)):
        raise TemplateError("unbalanced or unsupported {{ ... }}")

    # Second pass: nest if/else/end.
    root: list[Any] = []
    stack: list[tuple[_If, list[Any]]] = []
    current = root
    for piece in pieces:
        if isinstance(piece, str):
            if piece:
                current.append(piece)
            continue
        expr = piece[1]
        if expr.startswith("/*"):
            if not expr.endswith("*/"):
                raise TemplateError(f"bad comment: {expr!r}")
            continue
        word = expr.split(None, 1)[0] if expr else ""
        if word == "if":
            node = _If(expr[2:].strip())
            current.append(node)
            stack.append((node, current))
            current = node.then
        elif word == "else":
            if not stack or expr != "else":
                raise TemplateError(f"unsupported: {{{{ {expr} }}}}")
            current = stack[-1][0].orelse
        elif word == "end":
            if not stack:
                raise TemplateError("{{ end }} without {{ if }}")
            current = stack.pop()[1]
        elif word in {"range", "with", "define", "template", "include", "block", "tpl"}:
            raise TemplateError(f"unsupported construct {word!r}: keep the chart's templates simple")
        else:
            current.append(_Action(expr))
    if stack:
        raise TemplateError("{{ if }} without {{ end }}")
    return root


def _operand(token: str, context: Mapping[str, Any]) -> Any:
    if token.startswith('"'):
        return json.loads(token)
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    if token in {"true", "false"}:
        return token == "true"
    if token.startswith("."):
        value: Any = context
        for part in token[1:].split("."):
            if not isinstance(value, Mapping):
                raise TemplateError(f"{token}: {part!r} looked up in a {type(value).__name__}")
            value = value.get(part)
        return value
    raise TemplateError(f"unsupported operand {token!r}")


def _evaluate(expr: str, context: Mapping[str, Any]) -> Any:
    if "(" in expr or "$" in expr or ":=" in expr:
        raise TemplateError(f"unsupported expression {expr!r}")
    commands: list[list[str]] = [[]]
    for token in _TOKEN.findall(expr):
        if token.startswith("|"):
            commands.append([])
        else:
            commands[-1].append(token)
    piped: list[Any] = []
    for command in commands:
        if not command:
            raise TemplateError(f"empty command in {expr!r}")
        name, *args = command
        if name in FUNCTIONS:
            values = [_operand(a, context) for a in args] + piped
            value = FUNCTIONS[name](*values)
        elif not args and not piped:
            value = _operand(name, context)
        else:
            raise TemplateError(f"unknown function {name!r} in {expr!r}")
        piped = [value]
    return piped[0]


def _render_nodes(nodes: list[Any], context: Mapping[str, Any]) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _If):
            branch = node.then if _truthy(_evaluate(node.cond, context)) else node.orelse
            out.append(_render_nodes(branch, context))
        else:
            out.append(_text(_evaluate(node.expr, context)))
    return "".join(out)


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render one template with ``context`` ({"Values": ..., "Release": ..., "Chart": ...})."""
    return _render_nodes(_parse(source), context)
