"""Real gunicorn servers on loopback, a seeded scratch study, and a small HTTP client.

The reliability tests talk to the app the way production does: separate gunicorn processes
(TRACKER_ENV=production, a long secret, the rate limiter in Redis) over one database.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tracker import ROOT

GUNICORN = str(Path(ROOT) / ".venv" / "bin" / "gunicorn")
REDIS_URI = "redis://127.0.0.1:6379/15"
PRODUCTION_SECRET = "reliability-" + secrets.token_hex(32)
START_TIMEOUT = 40.0
REQUEST_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signing_key(instance: Path) -> Path:
    """An Ed25519 key for the audit checkpoints, kept beside (in production: away from) the
    instance."""
    from tracker.audit.checkpoints import generate_key_pem

    path = instance.parent / f"{instance.name}-signing-key.pem"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generate_key_pem())
        path.chmod(0o600)
    return path


def server_environment(database_url: str, instance: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TRACKER_") and key != "PYTHONPATH"
    }
    env.update(
        {
            "TRACKER_ENV": "production",
            "TRACKER_SECRET_KEY": PRODUCTION_SECRET,
            "TRACKER_DATABASE_URL": database_url,
            "TRACKER_RATELIMIT_STORAGE_URI": REDIS_URI,
            "TRACKER_INSTANCE_PATH": str(instance),
            "TRACKER_AUDIT_SIGNING_KEY": str(signing_key(instance)),
            "TRACKER_AUDIT_CHECKPOINT_DIR": str(instance.parent / f"{instance.name}-checkpoints"),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


@dataclass
class Server:
    """One gunicorn master and its workers; ``log`` holds gunicorn's and the app's output."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    workers: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The live workers (children of this master only)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except FileNotFoundError:
            return []

    def wait_for_workers(self, count: int | None = None, timeout: float = START_TIMEOUT) -> None:
        wanted = self.workers if count is None else count
        deadline = time.monotonic() + timeout
        while len(self.worker_pids()) < wanted:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"gunicorn workers did not start:\n{self.log_text()}")
            time.sleep(0.05)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def gunicorn(
    database_url: str,
    tmp: Path,
    *,
    workers: int = 2,
    timeout: int = 30,
    extra_env: dict[str, str] | None = None,
    log_level: str = "info",
) -> Iterator[Server]:
    """Start ``gunicorn -c python:tracker.gunicorn_config -w N -b 127.0.0.1:<free port>
    wsgi:app``, the production settings (the app preloaded in the master, workers forked from
    it); always stopped afterwards."""
    port = free_port()
    instance = tmp / f"instance-{port}"
    instance.mkdir(parents=True, exist_ok=True)
    log = tmp / f"gunicorn-{port}.log"
    handle = log.open("wb")
    process = subprocess.Popen(
        [
            GUNICORN,
            "-c",
            "python:tracker.gunicorn_config",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            str(timeout),
            "--graceful-timeout",
            "3",
            "--access-logfile",
            "-",
            "--error-logfile",
            "-",
            "--log-level",
            log_level,
            "wsgi:app",
        ],
        cwd=ROOT,
        env=server_environment(database_url, instance, **(extra_env or {})),
        stdin=subprocess.DEVNULL,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(process=process, port=port, log=log, workers=workers)
    try:
        _wait_until_serving(server)
        server.wait_for_workers()
        yield server
    finally:
        _stop(process)
        handle.close()


def _wait_until_serving(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"gunicorn exited at start:\n{server.log_text()}")
        try:
            if requests.get(server.url + "/api/v1/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not answer within {START_TIMEOUT} s:\n{server.log_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # Workers are in the master's session; none may outlive the test.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@dataclass
class ApiClient:
    """A bearer-token client for one server (one HTTP session per thread)."""

    base: str
    token: str
    http: requests.Session = field(default_factory=requests.Session)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        return self.http.request(method, self.base + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)


class CookieBrowser:
    """A form client that keeps cookies by hand: the production cookie is ``Secure``, which
    a cookie jar would rightly refuse to send over plain http on loopback."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []
        self.http = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        kwargs.setdefault("allow_redirects", False)
        response = self.http.request(method, self.base + path, headers=headers, **kwargs)
        self.http.cookies.clear()
        for raw in response.raw.headers.getlist("Set-Cookie"):
            self.set_cookie_headers.append(raw)
            name, _, rest = raw.partition("=")
            value = rest.split(";", 1)[0]
            if "expires=thu, 01 jan 1970" in raw.lower() or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    def csrf(self, path: str) -> str:
        import re

        page = self.request("GET", path)
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        assert match, f"no CSRF token on {path} ({page.status_code})"
        return match.group(1)

    def login(self, username: str, password: str) -> requests.Response:
        token = self.csrf("/login")
        return self.request(
            "POST",
            "/login",
            data={"username": username, "password": password, "csrf_token": token},
        )
