"""Store layer: :func:`open_store` is the one factory that turns ``store:`` of config.yaml into a Store."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sentinel.errors import register_secret

if TYPE_CHECKING:
    from sentinel.config import Config
    from sentinel.store.base import Store


def open_store(config: Config, *, base_dir: Path | None = None, clock: Callable[[], float] = time.time) -> Store:
    """The store ``config.store`` names; a relative TinyDB path is taken from ``base_dir``.

    PostgreSQL's URL and password are registered as secrets first, so no error or log line shows them.
    """
    sc = config.store
    if sc.type == "memory":
        from sentinel.store.memory import MemoryStore

        return MemoryStore()
    if sc.type == "postgresql":
        from sentinel.store.postgres import BACKGROUND_LOAD_ABOVE as PG_BACKGROUND_ABOVE
        from sentinel.store.postgres import PostgresStore, url_password

        url, password = sc.url.get_secret_value(), sc.password.get_secret_value()
        for secret in (url, password, url_password(url)):
            register_secret(secret)
        return PostgresStore(
            url,
            password=password,
            connect_timeout=sc.connect_timeout,
            clock=clock,
            background_above=PG_BACKGROUND_ABOVE,
        )
    from sentinel.store.tinydb import BACKGROUND_LOAD_ABOVE, TinyDBStore

    path = Path(sc.path)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return TinyDBStore(path, shards=sc.shards, clock=clock, background_above=BACKGROUND_LOAD_ABOVE)
