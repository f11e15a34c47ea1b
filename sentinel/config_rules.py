"""rules.yaml: its schema, compiling each rule (RE2), and loading; every problem named at once.

Each problem names the file, the rule (``rules[3] (oom-killed)``) and the key; a file with any
error loads nothing. Unknown keys are warnings, so the Go tool's rule files still load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sentinel.config_yaml import Duration, problems_of, read_yaml, unknown_keys
from sentinel.core.actions import validate_params
from sentinel.core.model import Priority
from sentinel.core.rollouts import WHEN_VALUES
from sentinel.core.rules import LEVELS as RULE_LEVELS
from sentinel.core.rules import MAX_RULES, LabelMatcher, PatternError, Rule, RuleLimitError, RuleSet, compile_pattern
from sentinel.core.rules import ON as RULE_ON
from sentinel.errors import ConfigError, cap


class MatchSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    pattern: str = ""
    keywords: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    namespaces: list[str] = Field(default_factory=list)
    levels: list[str] | str = Field(default_factory=list)  # [error, fatal], or "any" (ignores the level)
    on: str = "line"  # what pattern and keywords see: the raw "line" (as the Go tool) or the "message"


class RemediationSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    action: str = "none"
    params: dict[str, Any] = Field(default_factory=dict)
    cooldown: Duration = 300.0
    when: str = "always"  # or new_since_rollout (rollback only): see sentinel.core.rollouts


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)
    description: str = ""
    match: MatchSpec
    priority: Priority
    remediation: RemediationSpec = Field(default_factory=RemediationSpec)
    enabled: bool = True

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, v: object) -> Priority:
        return Priority.parse(v)


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    rules: list[Any] = Field(default_factory=list)


@dataclass
class LoadedRules:
    ruleset: RuleSet
    path: str
    warnings: list[str] = field(default_factory=list)


def build_rule(spec: RuleSpec) -> Rule:
    """A compiled rule; ``ValueError`` naming the field on a bad pattern, matcher or action."""
    regex = None
    if spec.match.pattern:
        try:
            regex = compile_pattern(spec.match.pattern)
        except PatternError as err:
            raise ValueError(
                f"match.pattern: invalid RE2 regex {cap(repr(err.pattern), 120)}: {cap(err.reason)}"
            ) from None
    labels = []
    for key, value in spec.match.labels.items():
        try:
            labels.append(LabelMatcher.build(key, str(value)))
        except PatternError as err:
            raise ValueError(
                f"match.labels.{cap(key, 60)}: invalid RE2 regex {cap(repr(err.pattern), 120)}: {cap(err.reason)}"
            ) from None
    allow = frozenset(n for n in spec.match.namespaces if not n.startswith("!"))
    deny = frozenset(n[1:] for n in spec.match.namespaces if n.startswith("!"))
    levels = _rule_levels(spec.match.levels)
    if spec.match.on not in RULE_ON:
        raise ValueError(f"match.on: {spec.match.on!r} is not one of {', '.join(RULE_ON)}")
    if not spec.match.pattern and not spec.match.keywords and not labels and not allow and not deny and not levels:
        raise ValueError("match: needs at least one of pattern, keywords, labels, namespaces, levels")
    try:
        params = validate_params(spec.remediation.action, spec.remediation.params)
    except ValueError as err:
        raise ValueError(f"remediation: {err}") from None
    if spec.remediation.cooldown < 0:
        raise ValueError("remediation.cooldown: must not be negative")
    if spec.remediation.when not in WHEN_VALUES:
        raise ValueError(
            f"remediation.when: {cap(repr(spec.remediation.when), 60)} is not one of {', '.join(WHEN_VALUES)}"
        )
    if spec.remediation.when == "new_since_rollout" and spec.remediation.action != "rollback":
        raise ValueError(
            f"remediation.when: new_since_rollout applies to action rollback only, not {spec.remediation.action!r}"
        )
    return Rule(
        name=spec.name,
        priority=spec.priority,
        pattern=spec.match.pattern,
        keywords=tuple(k.lower() for k in spec.match.keywords if k),
        labels=tuple(labels),
        namespaces_allow=allow,
        namespaces_deny=deny,
        action=spec.remediation.action,
        params=params.model_dump(),
        cooldown=spec.remediation.cooldown,
        enabled=spec.enabled,
        description=spec.description,
        regex=regex,
        levels=levels,
        on=spec.match.on,
        when=spec.remediation.when,
    )


_LEVEL_ALIASES = {"warn": "warning", "err": "error", "critical": "fatal", "crit": "fatal", "panic": "fatal"}


def _rule_levels(value: list[str] | str) -> frozenset[str]:
    """``match.levels``: a list of levels, or ``any`` (the rule ignores the level)."""
    items = [value] if isinstance(value, str) else list(value)
    out = set()
    for item in items:
        name = _LEVEL_ALIASES.get(str(item).strip().lower(), str(item).strip().lower())
        if name == "any":
            return frozenset()
        if name not in RULE_LEVELS:
            raise ValueError(f"match.levels: unknown level {item!r}; use any or {', '.join(RULE_LEVELS)}")
        out.add(name)
    return frozenset(out)


def parse_rules(data: Any, *, source: str) -> LoadedRules:
    """Validate rules already parsed from YAML (or sent by the API); all problems at once."""
    if data is None:
        data = {"rules": []}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'rules' list")
    try:
        top = RulesFile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid rules", problems=problems_of(err)) from None
    if len(top.rules) > MAX_RULES:
        raise ConfigError(f"{source}: rules: {len(top.rules)} rules, at most {MAX_RULES} are supported")
    warnings = [f"{source}: {k}: unknown key, ignored" for k in top.model_extra or {}]
    problems: list[str] = []
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(top.rules):
        label = f"rules[{i}]"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label = f"rules[{i}] ({raw['name']})"
        if not isinstance(raw, dict):
            problems.append(f"{label}: must be a mapping, got {type(raw).__name__}")
            continue
        try:
            spec = RuleSpec.model_validate(raw)
        except ValidationError as err:
            problems.extend(problems_of(err, f"{label}."))
            continue
        if spec.name in seen:
            problems.append(f"{label}.name: duplicate rule name {spec.name!r} (first at rules[{seen[spec.name]}])")
            continue
        seen[spec.name] = i
        if spec.name == "default":
            problems.append(f"{label}.name: 'default' is reserved for lines no rule matches")
            continue
        warnings.extend(f"{source}: {label}.{w}" for w in unknown_keys(spec, ""))
        try:
            rules.append(build_rule(spec))
        except ValueError as err:
            problems.append(f"{label}.{err}")
    if problems:
        raise ConfigError(f"{source}: invalid rules", problems=problems)
    try:
        ruleset = RuleSet(rules, source=source)
    except RuleLimitError as err:
        raise ConfigError(f"{source}: rules: {err}") from None
    return LoadedRules(ruleset, source, warnings)


def load_rules(path: str | Path) -> LoadedRules:
    return parse_rules(read_yaml(path, "rules"), source=str(path))
