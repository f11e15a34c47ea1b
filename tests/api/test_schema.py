"""schemathesis against the live server's OpenAPI schema: no generated input gives a 5xx.

Uses schemathesis's Python API (a Hypothesis strategy per operation) against uvicorn on 127.0.0.1,
with the API token, so mutating operations get past authentication and exercise their bodies.
Bounded: a few dozen examples per operation and mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from sentinel.api.app import OPENAPI_URL, create_app
from tests.api.conftest import AUTH, build_runtime, serve

EXAMPLES = 30


@pytest.fixture(scope="module")
def live_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    rt = build_runtime(Path(tmp_path_factory.mktemp("schema")))
    assert rt.poll_once().ok
    for served in serve(create_app(rt), rt):
        yield schemathesis.openapi.from_url(served.url + OPENAPI_URL)


def test_schema_lists_every_endpoint(live_schema: Any) -> None:
    ops = {(op.ok().method.upper(), op.ok().path) for op in live_schema.get_all_operations()}
    assert ops >= {
        ("GET", "/api/errors"), ("GET", "/api/errors/{group_id}"), ("PATCH", "/api/errors/{group_id}"),
        ("POST", "/api/errors/{group_id}/remediate"), ("GET", "/api/stats"), ("GET", "/api/rules"),
        ("POST", "/api/rules/test"), ("GET", "/api/remediations"), ("GET", "/api/settings"),
        ("POST", "/api/settings"), ("GET", "/api/safety"), ("POST", "/api/safety/breakers/reset"),
        ("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"),
    }  # fmt: skip


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_no_input_gives_a_server_error(live_schema: Any, mode: GenerationMode) -> None:
    failures: list[str] = []
    for result in live_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            case.call_and_validate(headers=dict(AUTH), checks=[not_a_server_error], timeout=10)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # no parameters: there is no invalid input to make
        except Exception as err:  # collect every operation's failure, then report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {err}"[:2000])
    assert not failures, "\n\n".join(failures)
