"""Audited writes per second against gunicorn on PostgreSQL (issue 19), with the audit chain
lock's hold and wait times.

    python -m benchmarks.audited_writes --postgres URL [--template bench1k] [--seconds 20]
        [--clients 8] [--workers 1 2 4] [--tree PATH ...]

Each run gets a fresh copy of the seeded study (``CREATE DATABASE ... TEMPLATE``; seed it first
with ``python -m benchmarks.run --postgres URL --only none``), serves it with ``gunicorn -w W``
from each ``--tree`` (a checkout: this one, or a worktree of an older commit, so before and
after are measured in one sitting on the same data) and drives it with ``wrk`` (Debian's
package, a C load generator, so the load costs little of the two cores): ``--clients``
connections, each with a coordinator's API token of its own, each posting notes
(``POST /api/v1/participants/<id>/notes``, one note and its audit event) round the
participants of its user's site.

Beside the load, a sampler reads ``pg_locks`` every 10 ms: how often the chain's advisory lock
is held and how many transactions wait for it. Trees that log ``tracker.audit.lock`` (the
chain appended at commit) also give each transaction's wait for the lock and how long it held
it, to its commit. The floor is what the database itself needs per append: lock, head, insert,
commit, from one client on a raw connection.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tracker import migrate
from tracker.audit.services import AUDIT_APPEND_LOCK_KEY, Actor
from tracker.auth.models import User
from tracker.auth.services import create_api_token
from tracker.db import Database, create_engine
from tracker.participants.models import Participant
from tracker.protocol import CLOSED_STATES

ROOT = Path(__file__).resolve().parent.parent
PORT = 8767
SAMPLE_EVERY_S = 0.010

WRK_SCRIPT = """
local clients = {}
local counter = 0
local statuses = {}
function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
  table.insert(statuses, thread)
end
function init(args)
  local mine = CLIENTS[index]
  token = mine.token
  paths = mine.paths
  n = 0
  created = 0
  refused = 0
end
function request()
  n = n + 1
  local path = paths[(n % #paths) + 1]
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, '{"text": "benchmark note"}')
end
function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    refused = refused + 1
    if first == nil then first = status .. " " .. string.sub(body, 1, 200) end
  end
end
function done(summary, latency, requests)
  local c, r = 0, 0
  for _, thread in ipairs(statuses) do
    c = c + thread:get("created")
    r = r + thread:get("refused")
    local first = thread:get("first")
    if first ~= nil then io.write("REFUSED " .. first .. "\\n") end
  end
  io.write(string.format("RESULT created=%d refused=%d p50=%.3f p99=%.3f\\n",
    c, r, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


@dataclass
class Run:
    tree: str
    workers: int
    writes_per_s: float
    refused: int
    p50_ms: float
    p99_ms: float
    lock_busy: float
    waiting: float
    held_ms: tuple[float, float] | None
    waited_ms: tuple[float, float] | None


def _admin_url(url: str) -> str:
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


def _fresh_copy(url: str, template: str, name: str) -> str:
    admin = sa.create_engine(_admin_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _clients(url: str, count: int) -> list[dict[str, object]]:
    """A token and a list of note paths for each client: a site's coordinator (several
    clients may share one, each with a token of its own) and the site's open participants."""
    database = Database(create_engine(url))
    try:
        with database.session_scope() as db:
            users = list(
                db.scalars(
                    sa.select(User)
                    .where(
                        User.role == "coordinator",
                        User.site_id.is_not(None),
                        User.is_active.is_(True),
                        User.password_temporary.is_(False),
                    )
                    .order_by(User.id)
                )
            )
            clients = []
            for index in range(count):
                user = users[index % len(users)]
                ids = list(
                    db.scalars(
                        sa.select(Participant.id)
                        .where(
                            Participant.site_id == user.site_id,
                            Participant.state.not_in([s.value for s in CLOSED_STATES]),
                        )
                        .order_by(Participant.id)
                        .limit(200)
                    )
                )
                token = create_api_token(db, Actor.system("benchmark"), user)
                clients.append(
                    {
                        "token": token,
                        "paths": [f"/api/v1/participants/{i}/notes" for i in ids],
                    }
                )
    finally:
        database.engine.dispose()
    return clients


def _lua_table(clients: list[dict[str, object]]) -> str:
    def value(item: object) -> str:
        if isinstance(item, list):
            return "{" + ", ".join(value(v) for v in item) + "}"
        return json.dumps(item)

    rows = [
        "{" + ", ".join(f"{k} = {value(v)}" for k, v in client.items()) + "}" for client in clients
    ]
    return "CLIENTS = {" + ",\n".join(rows) + "}\n"


def _sampler(url: str, stop: threading.Event, samples: list[tuple[int, int]]) -> None:
    engine = sa.create_engine(url.replace("+psycopg", "+psycopg"), isolation_level="AUTOCOMMIT")
    objid = AUDIT_APPEND_LOCK_KEY & 0xFFFFFFFF
    query = sa.text(
        "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted) "
        "FROM pg_locks WHERE locktype = 'advisory' AND objid = :objid"
    )
    with engine.connect() as connection:
        while not stop.is_set():
            held, waiting = connection.execute(query, {"objid": objid}).one()
            samples.append((int(held), int(waiting)))
            time.sleep(SAMPLE_EVERY_S)
    engine.dispose()


def _gunicorn_config(folder: Path) -> tuple[Path, Path]:
    log = folder / "lock.log"
    config = folder / "gunicorn_bench.py"
    config.write_text(
        "logconfig_dict = "
        + repr(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"plain": {"format": "%(message)s"}},
                "handlers": {
                    # gunicorn's own loggers write to "console": keep it.
                    "console": {"class": "logging.StreamHandler", "formatter": "plain"},
                    "lock": {
                        "class": "logging.FileHandler",
                        "filename": str(log),
                        "formatter": "plain",
                    },
                },
                "loggers": {
                    "tracker.audit.lock": {
                        "level": "DEBUG",
                        "handlers": ["lock"],
                        "propagate": False,
                    }
                },
            }
        )
        + "\n"
    )
    return config, log


def _quantiles(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return (statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000)


def one_run(url: str, template: str, tree: Path, workers: int, clients: int, seconds: float) -> Run:
    copy = _fresh_copy(url, template, "bench_writes")
    migrate.upgrade(copy)  # the seeded template may predate the newest migrations
    scratch = Path(tempfile.mkdtemp(prefix="tracker-writes-"))
    script = scratch / "notes.lua"
    script.write_text(_lua_table(_clients(copy, clients)) + WRK_SCRIPT)
    config, lock_log = _gunicorn_config(scratch)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")},
        "PYTHONPATH": str(tree),
        "TRACKER_ENV": "development",
        "TRACKER_DATABASE_URL": copy,
        "TRACKER_SECRET_KEY": "benchmark-secret-key-that-is-long-enough-0123456789",
        "TRACKER_INSTANCE_PATH": str(scratch / "instance"),
    }
    server = subprocess.Popen(  # noqa: S603 (our own gunicorn)
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "-c",
            str(config),
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{PORT}",
            "--timeout",
            "120",
            "wsgi:app",
        ],
        cwd=tree,
        env=environment,
    )
    try:
        _wait_for(PORT)
        # Warm every worker (imports, first connections) before the measured run.
        subprocess.run(  # noqa: S603
            _wrk(clients, 3, script),
            check=True,
            capture_output=True,
        )
        lock_log.write_text("")
        samples: list[tuple[int, int]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sampler, args=(copy, stop, samples))
        sampler.start()
        busy_before = _busy_cpu_seconds()
        measured = subprocess.run(  # noqa: S603
            _wrk(clients, seconds, script),
            check=True,
            capture_output=True,
            text=True,
        )
        busy = _busy_cpu_seconds() - busy_before
        stop.set()
        sampler.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = re.search(
        r"RESULT created=(\d+) refused=(\d+) p50=([\d.]+) p99=([\d.]+)", measured.stdout
    )
    assert result, measured.stdout + measured.stderr
    for line in measured.stdout.splitlines():
        if line.startswith("REFUSED"):
            print(line[:300])
    created = int(result.group(1))
    cpu_ms = busy / created * 1000 if created else 0.0
    print(
        f"  the machine's busy CPU per write: {cpu_ms:.2f} ms (server, database, load generator:"
        f" at most {os.cpu_count() or 1} x 1000 / {cpu_ms:.2f} = "
        f"{(os.cpu_count() or 1) * 1000 / cpu_ms if cpu_ms else 0:.0f} writes/s on this machine)"
    )
    held, waited, appending, committing = [], [], [], []
    for line in lock_log.read_text().splitlines():
        fields = dict(part.split("=") for part in line.split())
        waited.append(float(fields["waited"]))
        held.append(float(fields["held"]))
        if "appending" in fields:
            appending.append(float(fields["appending"]))
            committing.append(float(fields["committing"]))
    if appending:
        print(
            f"  held = head and insert {statistics.median(appending) * 1000:.2f} ms"
            f" + commit {statistics.median(committing) * 1000:.2f} ms (medians)"
        )
    shutil.rmtree(scratch, ignore_errors=True)
    return Run(
        tree=str(tree),
        workers=workers,
        writes_per_s=int(result.group(1)) / seconds,
        refused=int(result.group(2)),
        p50_ms=float(result.group(3)),
        p99_ms=float(result.group(4)),
        lock_busy=sum(1 for h, _ in samples if h) / max(1, len(samples)),
        waiting=statistics.fmean(w for _, w in samples) if samples else 0.0,
        held_ms=_quantiles(held),
        waited_ms=_quantiles(waited),
    )


def _busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (every core, every process), from
    /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _wrk(clients: int, seconds: float, script: Path) -> list[str]:
    return [
        "wrk", "-t", str(clients), "-c", str(clients), "-d", f"{seconds:.0f}s",
        "-s", str(script), f"http://127.0.0.1:{PORT}",
    ]  # fmt: skip


def _wait_for(port: int) -> None:
    import http.client

    for _ in range(300):
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            probe.request("GET", "/api/v1/health")
            if probe.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not answer")


def floor_of_the_call(url: str, template: str, rounds: int = 2000) -> float:
    """Seconds per append on a raw connection as the app appends: one ``audit_append`` call
    and the commit (one client)."""
    copy = _fresh_copy(url, template, "bench_writes")
    migrate.upgrade(copy)
    engine = sa.create_engine(copy)
    call = sa.text(
        "SELECT seq FROM audit_append(:key, :content, now(), NULL, 'bench', NULL, 'bench.floor',"
        " 'x', NULL, NULL, NULL, NULL, NULL)"
    )
    started = time.perf_counter()
    with engine.connect() as connection:
        for _ in range(rounds):
            with connection.begin():
                connection.execute(
                    call, {"key": AUDIT_APPEND_LOCK_KEY, "content": '{"action":"bench","seq":'}
                )
    elapsed = (time.perf_counter() - started) / rounds
    engine.dispose()
    return elapsed


def floor(url: str, template: str, rounds: int = 2000) -> float:
    """Seconds per append on a raw connection: lock, head, insert, commit (one client)."""
    copy = _fresh_copy(url, template, "bench_writes")
    engine = sa.create_engine(copy)
    with engine.connect() as connection:
        seq, prev = connection.execute(
            sa.text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        ).one()
    started = time.perf_counter()
    with engine.connect() as connection:
        for _ in range(rounds):
            with connection.begin():
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_APPEND_LOCK_KEY}
                )
                seq, prev = connection.execute(
                    sa.text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                ).one()
                connection.execute(
                    sa.text(
                        "INSERT INTO audit_events (seq, occurred_at, actor, action, entity_type,"
                        " prev_hash, hash) VALUES (:seq, now(), 'bench', 'bench.floor', 'x',"
                        " :prev, :hash)"
                    ),
                    {"seq": seq + 1, "prev": prev, "hash": f"{seq + 1:064x}"},
                )
    elapsed = (time.perf_counter() - started) / rounds
    engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True)
    parser.add_argument("--template", default="bench1k")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--tree", type=Path, nargs="+", default=[ROOT])
    arguments = parser.parse_args()
    if make_url(arguments.postgres).host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("benchmarks run against a server on loopback only")
    url = arguments.postgres
    per_append = floor(url, arguments.template)
    print(f"floor: {per_append * 1000:.2f} ms per append (lock, head, insert, commit)")
    per_call = floor_of_the_call(url, arguments.template)
    print(f"floor: {per_call * 1000:.2f} ms per append (one audit_append call, commit)")
    print(
        "| tree | workers | writes/s | refused | p50 / p99 | lock busy | waiting (mean) |"
        " held p50 / p95 | waited p50 / p95 |\n|---|---|---|---|---|---|---|---|---|"
    )
    # Interleaved: each worker count runs every tree in turn, so a noisy minute weighs on all.
    for workers in arguments.workers:
        for tree in arguments.tree:
            run = one_run(
                url,
                arguments.template,
                tree.resolve(),
                workers,
                arguments.clients,
                arguments.seconds,
            )
            held = f"{run.held_ms[0]:.2f} / {run.held_ms[1]:.2f} ms" if run.held_ms else "n/a"
            waited = (
                f"{run.waited_ms[0]:.2f} / {run.waited_ms[1]:.2f} ms" if run.waited_ms else "n/a"
            )
            print(
                f"| {tree} | {workers} | {run.writes_per_s:.1f} | {run.refused} |"
                f" {run.p50_ms:.1f} / {run.p99_ms:.1f} ms | {run.lock_busy:.0%} |"
                f" {run.waiting:.2f} | {held} | {waited} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
