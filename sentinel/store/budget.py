"""Does the configured retention fit the memory the process is given? (``kube-sentinel check``)

The store keeps every group and audit record in memory (the files are the durable copy), so the
retention limits bound the process's size. The per-item figures are measured by ``make bench``
(section "persistence": RSS at 10k and 100k groups); the limit is the cgroup's when there is one
(a container's ``resources.limits.memory``), else none is assumed.
"""

from __future__ import annotations

from pathlib import Path

MiB = 1024 * 1024
# Measured (make bench, persistence): ~5 KiB per group with 15 minute buckets, 3 samples and 2 pods,
# ~1.5 KiB per audit record, ~150 MiB for the interpreter, console, API and engine at rest.
GROUP_BYTES = 5 * 1024
RECORD_BYTES = 1536
BASE_BYTES = 150 * MiB
HEADROOM = 0.8  # warn past 80% of the limit: a poll's batch and a page's copies need room too

CGROUP_FILES = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def cgroup_limit(files: tuple[Path, ...] = CGROUP_FILES) -> int | None:
    """The memory limit of this process's cgroup in bytes, or None (no limit, or not in a container)."""
    for f in files:
        try:
            text = f.read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit():
            return None
        value = int(text)
        return value if value < 1 << 60 else None  # cgroup v1 says "no limit" with a huge number
    return None


def needed(max_groups: int, max_records: int) -> int:
    return BASE_BYTES + max_groups * GROUP_BYTES + max_records * RECORD_BYTES


def retention_warning(max_groups: int, max_records: int, limit: int | None) -> str | None:
    """One line when ``max_groups`` and ``max_records`` cannot fit in ``limit`` bytes, else None."""
    if limit is None:
        return None
    need = needed(max_groups, max_records)
    if need <= limit * HEADROOM:
        return None
    fit = max(0, int((limit * HEADROOM - BASE_BYTES - max_records * RECORD_BYTES) // GROUP_BYTES))
    return (
        f"retention.max_groups {max_groups} and retention.max_records {max_records} need about "
        f"{need // MiB} MiB, more than {int(HEADROOM * 100)}% of the {limit // MiB} MiB memory limit: "
        f"lower retention.max_groups to about {fit} or raise the limit"
    )
