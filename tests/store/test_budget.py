"""`check` warns when retention cannot fit the memory limit; the shipped defaults fit 512 Mi."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.config import RetentionConfig
from sentinel.store.budget import MiB, cgroup_limit, retention_warning

LIMIT = 512 * MiB


@pytest.mark.parametrize(
    ("v2", "v1", "want"),
    [
        pytest.param("536870912\n", None, 512 * MiB, id="v2-limit"),
        pytest.param("max\n", None, None, id="v2-unlimited"),
        pytest.param(None, "9223372036854771712\n", None, id="v1-unlimited"),
        pytest.param(None, "268435456\n", 256 * MiB, id="v1-limit"),
        pytest.param(None, None, None, id="no-cgroup"),
    ],
)
def test_cgroup_limit(tmp_path: Path, v2: str | None, v1: str | None, want: int | None) -> None:
    files = (tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes")
    for f, text in zip(files, (v2, v1), strict=True):
        if text is not None:
            f.write_text(text)
    assert cgroup_limit(files) == want


def test_the_old_defaults_do_not_fit_512_mi_and_the_warning_says_what_to_do() -> None:
    msg = retention_warning(100_000, 50_000, LIMIT)
    assert msg is not None and "\n" not in msg
    assert "retention.max_groups 100000" in msg and "512 MiB" in msg and "lower retention.max_groups to about" in msg


def test_the_shipped_defaults_fit_512_mi_with_room() -> None:
    r = RetentionConfig()
    assert retention_warning(r.max_groups, r.max_records, LIMIT) is None
    assert retention_warning(r.max_groups, r.max_records, None) is None
