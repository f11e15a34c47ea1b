"""The deploy helpers themselves: deploy/sync_config.py's YAML writer and the Go-template substitute."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from tests.deploy import gotemplate, support


def _sync_config():
    spec = importlib.util.spec_from_file_location("sync_config", support.DEPLOY / "sync_config.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: 1\nb:\n  - x\n", id="plain"),
        pytest.param("a: 1", id="no-final-newline"),
        pytest.param("a: 1\n\n\n", id="trailing-blank-lines"),
        pytest.param("  indented: first\nb: 2\n", id="leading-space"),
        pytest.param("a: 1   \n\tb\n", id="trailing-space-and-tab"),
        pytest.param("# only a comment\n\n# another\n", id="comments"),
        pytest.param("", id="empty"),
    ],
)
@pytest.mark.parametrize("indent", [0, 2])
def test_block_scalar_round_trips(text: str, indent: int) -> None:
    out = _sync_config().block_scalar("key", text, indent)
    nested = yaml.safe_load("outer:\n" + out) if indent else yaml.safe_load(out)
    assert (nested["outer"] if indent else nested) == {"key": text}


def test_sync_config_check_passes() -> None:
    """Every derived copy is current (else: python deploy/sync_config.py)."""
    assert _sync_config().main(["--check"]) == 0


CTX = {"Values": {"s": "a\nb\n", "n": 3, "flag": False, "m": {"k": "v"}, "empty": ""}, "Chart": {"AppVersion": "9"}}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("x: {{ .Values.n }}", "x: 3", id="field"),
        pytest.param("x: {{ .Values.n | quote }}", 'x: "3"', id="quote"),
        pytest.param("x: {{ .Values.empty | default .Chart.AppVersion }}", "x: 9", id="default"),
        pytest.param("x:\n  {{- toYaml .Values.m | nindent 2 }}", "x:\n  k: v", id="toYaml-nindent"),
        pytest.param("x: |\n  {{- .Values.s | nindent 2 }}\n", "x: |\n  a\n  b\n  \n", id="block"),
        pytest.param("a\n{{- if .Values.flag }}\nyes\n{{- else }}\nno\n{{- end }}\n", "a\nno\n", id="if-else"),
        pytest.param("{{/* note */}}a", "a", id="comment"),
    ],
)
def test_substitute_renders(template: str, expected: str) -> None:
    assert gotemplate.render(template, CTX) == expected


@pytest.mark.parametrize(
    "template",
    [
        pytest.param('{{ include "x" . }}', id="include"),
        pytest.param("{{ range .Values.m }}{{ end }}", id="range"),
        pytest.param("{{ .Values.missing }}", id="missing-value"),
        pytest.param("{{ upper .Values.s }}", id="unknown-function"),
        pytest.param("{{ if .Values.flag }}", id="unclosed-if"),
    ],
)
def test_substitute_refuses_what_it_does_not_know(template: str) -> None:
    with pytest.raises(gotemplate.TemplateError):
        gotemplate.render(template, CTX)
