"""A PostgreSQL cluster of the test's own (initdb in a temporary directory, a free port), for
tests that must stop and start the server: they never touch a server they did not start."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.servers import free_port

START_SECONDS = 60


def _postgres_bin() -> Path:
    """The directory of initdb and pg_ctl: on PATH, or Debian's versioned directory."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not candidates:
        pytest.fail(
            "initdb was not found: install PostgreSQL's server binaries "
            "(`make system-packages-test` installs Debian's postgresql)"
        )
    return Path(candidates[-1]).parent


def _as_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the postgres system user."""
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root, but there is no 'postgres' user to own a test cluster")
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class Cluster:
    bindir: Path
    data: Path
    sockets: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]),
            capture_output=True,
            text=True,
            timeout=START_SECONDS * 2,
            check=False,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        done = self._pg_ctl(
            "-o", options, "-l", str(self.log), "-w", "-t", str(START_SECONDS), "start"
        )
        assert done.returncode == 0, done.stdout + done.stderr + self.log.read_text()

    def stop(self) -> None:
        done = self._pg_ctl("-m", "fast", "-w", "stop")
        assert done.returncode == 0, done.stdout + done.stderr

    def is_running(self) -> bool:
        return self._pg_ctl("status").returncode == 0


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A fresh cluster, started, trusting local connections; stopped and removed afterwards."""
    bindir = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="tracker-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(bindir, data, sockets, free_port(), root / "server.log")
    try:
        initdb = subprocess.run(
            _as_owner(
                [
                    *(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"),
                    *("--no-sync", "-E", "UTF8", "--no-instructions"),
                ]
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert initdb.returncode == 0, initdb.stdout + initdb.stderr
        cluster.start()
        yield cluster
    finally:
        if cluster.is_running():
            cluster.stop()
        deadline = time.monotonic() + 10
        while cluster.is_running() and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)
