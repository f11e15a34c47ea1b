"""A throwaway PostgreSQL cluster for tests and the bench: Debian's own server binaries, no mock.

``PgCluster.start()`` runs ``initdb`` in a fresh temporary folder and ``postgres`` listening on a
Unix socket in that folder and on 127.0.0.1 (a free port); ``stop()`` shuts it down and removes
the folder. PostgreSQL refuses to run as root: when the tests run as root (CI containers), the
folder is given to the ``postgres`` user (made by Debian's package) and both programs run as it
through ``runuser``. The superuser ``postgres`` connects over the socket without a password
(``trust``); TCP needs a password (``scram-sha-256``) so the password paths are tested for real.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

RUN_AS = "postgres"
PASSWORD = "s3cret-Sentinel-pw"  # of the role ``sentinel``, which may log in over TCP


def find_bindir() -> Path | None:
    """Where initdb and postgres are: ``pg_config --bindir``, else the newest /usr/lib/postgresql/*/bin."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10)
            d = Path(out.stdout.strip())
            if (d / "initdb").exists() and (d / "postgres").exists():
                return d
        except (OSError, subprocess.SubprocessError):
            pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="ks-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", RUN_AS, "--", *args] if self._as_root else list(args)

    def start(self) -> PgCluster:
        if self._as_root:
            pw = pwd.getpwnam(RUN_AS)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            self._cmd(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        opts = [
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.root),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=60",
            "-c",
            "shared_buffers=32MB",
        ]
        if not self.durable:
            opts += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        log = open(self.root / "server.log", "wb")  # noqa: SIM115 - kept open for the server's life
        self.proc = subprocess.Popen(self._cmd(str(self.bindir / "postgres"), *opts), stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while not (self.root / f".s.PGSQL.{self.port}").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {(self.root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.05)
        self._wait_ready()
        self.admin(f"CREATE ROLE sentinel LOGIN PASSWORD '{PASSWORD}' CREATEDB")
        return self

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.url(user="postgres"), connect_timeout=5):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def url(self, dbname: str = "postgres", *, user: str = "sentinel") -> str:
        """Over the Unix socket (no password needed there)."""
        return f"host={self.root} port={self.port} user={user} dbname={dbname}"

    def tcp_url(self, dbname: str, *, with_password: bool = False) -> str:
        auth = f"sentinel:{PASSWORD}" if with_password else "sentinel"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url(user="postgres"), autocommit=True) as conn:
            conn.execute(statement)

    def new_database(self) -> str:
        """A fresh, empty database owned by ``sentinel``; returns its name."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.admin(f"CREATE DATABASE {name} OWNER sentinel")
        return name

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # "fast" shutdown (clients are disconnected); through pg_ctl, as runuser may sit between us
            subprocess.run(
                self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "stop", "-m", "fast", "-w"),
                capture_output=True,
                timeout=60,
            )
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


# -- pytest fixtures (registered in tests/conftest.py) -------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL server for the whole test session (skipped, with the reason, where none is installed)."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it")
    cluster = PgCluster(bindir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A connection string to a fresh, empty database of its own."""
    return pg_cluster.url(pg_cluster.new_database())
