"""What starting the tracker costs (issue 19): a command, and gunicorn's workers with and
without the app preloaded in the master.

    python -m benchmarks.startup [--runs 5] [--workers 4] [--database-url URL]

* ``tracker db current``: wall time and peak RSS of the whole command (median of ``--runs``),
  against a bare ``python -c pass`` in the same runs, interleaved;
* gunicorn with ``tracker/gunicorn_config.py`` (the app preloaded) and the same with
  ``TRACKER_PRELOAD=0``, interleaved: seconds from start to the first answer; with one worker, how
  long after it is killed its replacement answers (what ``max_requests`` and a crash cost);
  with ``--workers``, each worker's memory of its own (USS: the pages no other process
  shares) and proportional share (PSS), from /proc/<pid>/smaps_rollup.

The database defaults to a scratch SQLite file, migrated first.
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tracker import migrate

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PORT = 8768


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)  # noqa: S603
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of the children is the largest so far: measure a fresh child each time.
    return elapsed, max(peak, before) / 1024


def command_start(env: dict[str, str], runs: int) -> None:
    _measured_peak([str(BIN / "tracker"), "db", "current"], env)  # writes the byte code
    tracker_times, bare_times, peaks = [], [], []
    for _ in range(runs):
        seconds, _ = _run([sys.executable, "-c", "pass"], env)
        bare_times.append(seconds)
        seconds, peak = _measured_peak([str(BIN / "tracker"), "db", "current"], env)
        tracker_times.append(seconds)
        peaks.append(peak)
    print(
        f"tracker db current: {statistics.median(tracker_times):.2f} s"
        f" (min {min(tracker_times):.2f}, max {max(tracker_times):.2f}),"
        f" peak RSS {statistics.median(peaks):.0f} MB;"
        f" bare python: {statistics.median(bare_times) * 1000:.0f} ms"
        f" ({statistics.median(tracker_times) / statistics.median(bare_times):.0f}x)"
    )


def _measured_peak(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one command, measured in a wrapper of its own (the
    children's maximum is per process tree)."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
        "print(time.perf_counter() - start,"
        " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", wrapper, *command], env=env, check=True, capture_output=True,
        text=True,
    ).stdout.split()  # fmt: skip
    return float(out[0]), float(out[1])


def _memory(pid: int) -> tuple[float, float]:
    """USS and PSS of a process in MB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        values[name.rstrip(":")] = int(value)
    uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return uss / 1024, values.get("Pss", 0) / 1024


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The parent pid is the field after the state, past the parenthesised name.
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _answer_within(deadline_s: float) -> float | None:
    """Seconds until the server answers a health check (None: not within the deadline)."""
    started = time.perf_counter()
    while time.perf_counter() - started < deadline_s:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
            connection.request("GET", "/api/v1/health")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                return time.perf_counter() - started
        except OSError:
            time.sleep(0.01)
    return None


def _serve(env: dict[str, str], count: int, preload: bool) -> subprocess.Popen[bytes]:
    command = [
        str(BIN / "gunicorn"), "-c", "python:tracker.gunicorn_config", "-w", str(count),
        "-b", f"127.0.0.1:{PORT}", "wsgi:app",
    ]  # fmt: skip
    return subprocess.Popen(  # noqa: S603
        command,
        cwd=ROOT,
        env={**env, "TRACKER_PRELOAD": "1" if preload else "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def workers(env: dict[str, str], count: int, preload: bool) -> None:
    mode = "preloaded" if preload else "not preloaded (TRACKER_PRELOAD=0)"
    # A replaced worker (max_requests, a crash): with one worker, kill it and time the answer
    # of the one the master forks in its place.
    server = _serve(env, 1, preload)
    try:
        first = _answer_within(60)
        (worker,) = _children(server.pid)
        os.kill(worker, 9)
        replaced = _answer_within(60)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # Memory: every worker loaded and warmed by a few answers.
    server = _serve(env, count, preload)
    try:
        _answer_within(60)
        time.sleep(3)  # without preload each worker imports the app after its fork
        for _ in range(count * 10):
            _answer_within(5)
        sizes = [_memory(p) for p in _children(server.pid)]
        master_uss, master_pss = _memory(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"gunicorn, {mode}: first answer {first or 0:.2f} s; a replaced worker answers after"
        f" {replaced or 0:.2f} s; -w {count}: per worker USS"
        f" {statistics.median(s[0] for s in sizes):.1f} MB, PSS"
        f" {statistics.median(s[1] for s in sizes):.1f} MB; master USS {master_uss:.1f} MB;"
        f" all processes' PSS {sum(s[1] for s in sizes) + master_pss:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database-url", default=None)
    arguments = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="tracker-startup-"))
    url = arguments.database_url or f"sqlite:///{scratch / 'tracker.db'}"
    migrate.upgrade(url)
    env = {
        # Byte code cached, as an installed wheel has it (pip compiles at install).
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TRACKER_") and k != "PYTHONDONTWRITEBYTECODE"
        },
        "TRACKER_ENV": "development",
        "TRACKER_DATABASE_URL": url,
        "TRACKER_SECRET_KEY": "benchmark-secret-key-that-is-long-enough-0123456789",
        "TRACKER_INSTANCE_PATH": str(scratch / "instance"),
    }
    command_start(env, arguments.runs)
    for preload in (True, False, True, False):  # interleaved
        workers(env, arguments.workers, preload)


if __name__ == "__main__":
    main()
