"""The wheel the image installs carries the demo (its rules link to config/rules.yaml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_built_from_the_image_context_has_the_demo(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    # What deploy/Dockerfile's builder stage copies.
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "sentinel", src / "sentinel", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "config").mkdir()
    shutil.copy(ROOT / "config" / "rules.yaml", src / "config" / "rules.yaml")
    assert "COPY config/rules.yaml ./config/rules.yaml" in (ROOT / "deploy" / "Dockerfile").read_text()
    out = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("kube_sentinel-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "sentinel/demo/rules.yaml",
        "sentinel/demo/config.yaml",
        "sentinel/demo/logs.jsonl",
        "sentinel/py.typed",
    ):
        assert needed in names
    rules = zipfile.ZipFile(wheel).read("sentinel/demo/rules.yaml")
    assert rules == (ROOT / "config" / "rules.yaml").read_bytes()
