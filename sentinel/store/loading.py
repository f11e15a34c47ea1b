"""What the TinyDB and PostgreSQL stores share: reading the groups and audit in the background.

A large store takes in its small state (cursor, safety, settings) at once and reads the rest on a
thread once the engine serves (:meth:`LoadingStore.serving`, at most ``LOAD_WAIT_MAX`` after
opening), so the parsing does not slow the server's own start (the GIL is shared). Writes and
reads of everything wait for it (:meth:`LoadingStore._wait_loaded`); page reads show what is in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sentinel.errors import StoreError
from sentinel.store.memory import MemoryStore

# A background load waits at most this long for the process to start serving (seconds).
LOAD_WAIT_MAX = 5.0


class LoadingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self._serving = threading.Event()
        self._loaded = threading.Event()
        self._loaded.set()
        self._stop_loading = False
        self._load_error = ""  # set when a background load failed: nothing is written until a restart
        self._loader: threading.Thread | None = None

    def serving(self) -> None:
        """The process serves now: a background load may begin."""
        self._serving.set()

    def _load_in_background(self, target: Callable[..., None], *args: Any) -> None:
        self._loaded.clear()
        self._loader = threading.Thread(target=target, args=args, name="store-load", daemon=True)
        self._loader.start()

    def _wait_until_serving(self) -> None:
        """The loader's first step: the server's start goes first."""
        self._serving.wait(LOAD_WAIT_MAX)

    def _wait_loaded(self) -> None:
        """Before a write (or a read of everything): wait for the background load, if one runs."""
        if not self._loaded.is_set():
            self._loaded.wait()
        if self._load_error:
            raise StoreError(self._load_error)

    def _stop_a_running_load(self) -> bool:
        """At close: a load still running stops reading (nothing of the groups changed yet). Whether one ran."""
        if self._loaded.is_set():
            return False
        self._stop_loading = True
        self._serving.set()  # a loader still waiting for the start wakes, and stops
        if self._loader is not None:
            self._loader.join(timeout=30)
        return True
