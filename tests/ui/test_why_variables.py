"""The detail page's "why it is here" shows which parts of the sample were taken for variables."""

from __future__ import annotations

from sentinel.core.model import ErrorGroup
from sentinel.engine.runtime import Runtime
from sentinel.store.base import GroupQuery
from sentinel.views.explain import why
from tests.ui.conftest import no_exception, open_page


def _with_variables(rt: Runtime) -> ErrorGroup:
    for g in rt.store.filtered_groups(GroupQuery()):
        w = why(g, rt.rules, rt.pipeline)
        if w.variables:
            return g
    raise AssertionError("the demo should have a group whose template holds variables")


def test_why_lists_the_variable_parts_of_the_newest_sample(demo_rt: Runtime) -> None:
    g = _with_variables(demo_rt)
    w = why(g, demo_rt.rules, demo_rt.pipeline)
    assert len(w.variables) == g.template.count("<*>")
    at = open_page("errors", {"id": g.id})
    no_exception(at)
    assert any("Treated as variables" in str(c.value) for c in at.caption)
    assert any(str(c.value) == "\n".join(w.variables) for c in at.code)
