"""store layer: the :class:`~sentinel.store.base.Store` contract and its implementations."""

from __future__ import annotations

from pathlib import Path

from sentinel.config import Config
from sentinel.store.base import Store


def open_store(config: Config, base_dir: Path | None = None) -> Store:
    """The store ``store:`` names; a relative ``store.path`` is taken from ``base_dir``."""
    if config.store.type == "memory":
        from sentinel.store.memory import MemoryStore

        return MemoryStore()
    from sentinel.store.tinydb import TinyDBStore

    path = Path(config.store.path)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return TinyDBStore(path, shards=config.store.shards)
