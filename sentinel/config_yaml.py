"""Reading a config or rules file: YAML with limits, and problems worded as one line each.

A hostile file fails fast and small (size, encoding, nesting, alias expansion, duplicate keys),
each refusal one ``ConfigError`` line naming the file and where. :func:`problems_of` turns a
pydantic error into ``key.path: why`` lines (a secret's value is never echoed);
:func:`unknown_keys` lists the keys a schema ignored, as warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError

from sentinel.core.durations import parse_duration
from sentinel.errors import ConfigError, cap

# Seconds, written in files as ``30s``, ``5m``, ``1h30m`` (or a bare number of seconds).
Duration = Annotated[float, BeforeValidator(parse_duration)]


# Limits on what a config or rules file may be, so that a hostile file fails fast and small.
MAX_FILE_BYTES = 4 * 1024 * 1024  # 4 MiB: room for ~20,000 ordinary rules
MAX_DEPTH = 64  # nested mappings/sequences
MAX_ALIAS_NODES = 10_000  # nodes that aliases (*name) may add in all, counting what each expands to


class _Refused(yaml.YAMLError):
    """A file the loader will not read further; ``problem_mark`` says where."""

    def __init__(self, problem: str, mark: Any) -> None:
        self.problem = problem
        self.problem_mark = mark
        super().__init__(problem)


_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present


def _check_structure(text: str) -> None:
    """One pass over the parse events: refuse deep nesting and aliases that expand too far.

    Each node's weight is how many nodes it stands for once its aliases are expanded; an alias
    adds its anchor's weight to the total, which is bounded by :data:`MAX_ALIAS_NODES`.
    """
    anchors: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # [anchor, weight so far] per open collection
    expanded = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            weight = anchors.get(event.anchor or "", 1)
            expanded += weight
            if expanded > MAX_ALIAS_NODES:
                raise _Refused(
                    f"aliases expand to more than {MAX_ALIAS_NODES} nodes (at *{event.anchor}); "
                    "write the values out instead",
                    event.start_mark,
                )
            stack[-1][1] += weight
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor:
                anchors[event.anchor] = 1
            stack[-1][1] += 1
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            if len(stack) > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            stack.append([event.anchor, 1])
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            anchor, weight = stack.pop()
            if anchor:
                anchors[anchor] = weight
            stack[-1][1] += weight


class _BoundedLoader(_Loader):  # type: ignore[valid-type,misc]
    """The safe loader, refusing duplicate keys in a mapping (YAML would silently keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            line = key_node.start_mark.line + 1
            key = (key_node.tag, str(key_node.value))
            if key in seen:
                shown = cap(key[1], 60)
                raise _Refused(f"duplicate key {shown!r} (lines {seen[key]} and {line})", key_node.start_mark)
            seen[key] = line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def one_line(text: object, limit: int = 200) -> str:
    return cap(" ".join(str(text).split()), limit)


def read_yaml(path: str | Path, what: str) -> Any:
    """Parse ``path`` as YAML: size, encoding, nesting, aliases and duplicate keys checked first.

    Every refusal is one ``ConfigError`` line naming the file and the problem (with the line and
    column, or the byte offset, where there is one).
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{p}: {what} file not found") from None
    except OSError as err:
        raise ConfigError(f"{p}: cannot read {what} file: {err.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{p}: {what} file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; refused")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            f"{p}: not UTF-8: byte 0x{raw[err.start]:02x} at offset {err.start} (line {line}); save the file as UTF-8"
        ) from None
    try:
        _check_structure(text)
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a safe loader, with limits
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        verb = "refused" if isinstance(err, _Refused) else "not valid YAML"
        raise ConfigError(f"{p}: {verb}{where}: {one_line(problem)}") from None
    except RecursionError:
        raise ConfigError(f"{p}: refused: nested too deep") from None


def _loc(parts: tuple[int | str, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def problems_of(err: ValidationError, prefix: str = "") -> list[str]:
    problems = []
    for e in err.errors():
        loc = _loc(tuple(e["loc"]))
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] in (
            "string_type",
            "int_type",
            "bool_type",
            "float_type",
            "list_type",
            "dict_type",
            "int_parsing",
            "bool_parsing",
            "float_parsing",
            "model_type",
        ):
            shown = "(hidden)" if _is_secret(e["loc"]) else cap(repr(e.get("input")), 80)
            msg = f"{msg} (got {type(e.get('input')).__name__} {shown})"
        problems.append(f"{prefix}{loc}: {msg}")
    return problems


SECRET_KEYS = frozenset({"password", "bearer_token", "token", "url"})


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    """A secret's value is never echoed in an error, whatever its type."""
    return any(part in SECRET_KEYS for part in loc)


def unknown_keys(model: BaseModel, prefix: str) -> list[str]:
    warnings = []
    for key in model.model_extra or {}:
        warnings.append(f"{prefix}{key}: unknown key, ignored")
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            warnings.extend(unknown_keys(value, f"{prefix}{name}."))
    return warnings
