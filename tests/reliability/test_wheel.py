"""The built wheel carries the app (SPEC §8): installed, not editable, into a fresh venv and run
from a directory with no checkout in it, it migrates, loads the demo and serves a page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from tests.reliability.servers import CookieBrowser, free_port
from tracker import ROOT

APP_DIRECTORIES = ("templates", "static", "migrations", "fixtures")


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_serves_the_demo(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKER_", "PYTHON"))}
    wheels = tmp_path / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), "."],
        ROOT,
        env,
    )
    (wheel,) = wheels.glob("tracker-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for directory in APP_DIRECTORIES:
        shipped = {n for n in names if n.startswith(f"tracker/{directory}/")}
        in_checkout = [p for p in (ROOT / directory).rglob("*") if p.is_file()]
        in_checkout = [p for p in in_checkout if "__pycache__" not in p.parts]
        assert len(shipped) == len(in_checkout), (directory, sorted(shipped))

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps"]
    run([*pip, "--require-hashes", "-r", str(ROOT / "requirements.lock")], tmp_path, env)
    run([*pip, str(wheel)], tmp_path, env)

    # Run where no checkout is: every file must come from the installed package.
    work = tmp_path / "elsewhere"
    work.mkdir()
    env.update({"TRACKER_INSTANCE_PATH": str(work / "instance")})
    where = run(
        [str(venv / "bin" / "python"), "-c", "import tracker.paths as p; print(p.TEMPLATES)"],
        work,
        env,
    )
    assert where.strip().startswith(str(venv)), where
    tracker = str(venv / "bin" / "tracker")
    run([tracker, "db", "upgrade"], work, env)
    logins = run([tracker, "demo"], work, env)
    username, password = next(
        line.split()[:2] for line in logins.splitlines() if line.strip().endswith("at S01")
    )

    port = free_port()
    server = subprocess.Popen(
        [
            str(venv / "bin" / "gunicorn"),
            "-w",
            "1",
            "-b",
            f"127.0.0.1:{port}",
            "tracker:create_app()",
        ],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        browser = CookieBrowser(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.communicate()[0].decode(errors="replace")
            assert time.monotonic() < deadline, "the installed app did not start"
            try:
                if requests.get(browser.base + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        assert browser.login(username, password).status_code == 302
        dashboard = browser.request("GET", "/")
        assert dashboard.status_code == 200 and "S01-" in dashboard.text, dashboard.text[:500]
        stylesheet = re.search(r'href="(/static/[^"]+\.css)"', dashboard.text)
        assert stylesheet, "no stylesheet linked"
        assert browser.request("GET", stylesheet.group(1)).status_code == 200
    finally:
        server.terminate()
        server.communicate(timeout=10)
