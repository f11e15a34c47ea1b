"""Issue 11: everything from logs and labels is shown as text. Hostile lines and labels go through the
demo's pipeline; no page may hand them to Markdown unescaped (the browser test checks the DOM)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sentinel.engine.runtime import Runtime, install, uninstall
from sentinel.store.memory import MemoryStore
from sentinel.ui.format import md
from tests.ui import hostile
from tests.ui.conftest import no_exception, open_page, readable

# Markdown / HTML that would be interpreted if it reached st.markdown as written.
RAW = ("](javascript", "](http", "![", "<img", "<b>", ":red[red]", "$x^2$", "**bold**")
KINDS = ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")


@pytest.fixture
def hostile_rt(tmp_path: Path) -> Iterator[Runtime]:
    rt = hostile.seed(tmp_path / "hostile.jsonl", store=MemoryStore())
    install(rt)
    yield rt
    uninstall()
    rt.stop()


def _markdown_sources(at: AppTest) -> list[str]:
    values = [str(e.value) for kind in KINDS for e in getattr(at, kind)]
    values += [str(m.label) for m in at.metric] + [str(m.value) for m in at.metric]
    return values


def _assert_no_raw_markup(at: AppTest) -> None:
    no_exception(at)
    for value in _markdown_sources(at):
        live = re.sub(r"\\.", "\x00", value)  # an escaped character is literal text: blank it out
        for raw in RAW:
            assert raw not in live, f"{raw!r} reaches Markdown unescaped in {value!r}"


@pytest.mark.parametrize(
    ("char_text", "shown"),
    [
        pytest.param("![x](http://e/x.png)", "![x](http://e/x.png)", id="image"),
        pytest.param("[x](javascript:alert(1))", "[x](javascript:alert(1))", id="link"),
        pytest.param("<img src=x onerror=1>", "<img src=x onerror=1>", id="html"),
        pytest.param(":red[x] :material/bolt: $x$", ":red[x] :material/bolt: $x$", id="directives"),
        pytest.param("a\\*b\\", "a\\*b\\", id="backslashes"),
    ],
)
def test_md_escapes_every_special_character_and_reads_back(char_text: str, shown: str) -> None:
    out = md(char_text)
    assert readable(out) == shown
    bare = re.sub(r"\\.", "", out)  # what is left once every escaped character is taken out
    assert not set(bare) & set("[]()<>!*_`:$\\"), bare


def test_the_detail_page_shows_hostile_labels_and_lines_as_text(hostile_rt: Runtime) -> None:
    g = next(g for g in hostile_rt.store.all_groups() if g.namespace == hostile.NAMESPACE)
    at = open_page("errors", {"id": g.id})
    _assert_no_raw_markup(at)
    title = at.title[0].value
    assert readable(title).endswith(f"{hostile.NAMESPACE}/{g.workload}")  # shown, as written
    assert any(hostile.CONTAINER in readable(c.value) for c in at.caption)
    assert any("<img src" in c.value for c in at.code)  # the raw samples, in code blocks


@pytest.mark.parametrize("page", ["overview", "errors", "history", "rules", "settings"])
def test_no_page_hands_log_text_to_markdown(hostile_rt: Runtime, page: str) -> None:
    at = open_page(page)
    _assert_no_raw_markup(at)


def test_a_hostile_search_in_the_url_is_text(hostile_rt: Runtime) -> None:
    at = open_page("errors", {"q": "![x](http://127.0.0.1:9/q.png)", "namespace": hostile.NAMESPACE})
    _assert_no_raw_markup(at)
