"""`make run` as a person runs it: it serves the demo, and Ctrl-C (SIGINT) or SIGTERM to its process
group stops every process it started (make, runserver's autoreloader and the server it restarts)."""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.test_project import PROJECT_ROOT, settings_variables

# First run on an empty database: migrate, then load_demo draws and verifies 66 images.
SERVING_WITHIN_SECONDS = 300
STOPPED_WITHIN_SECONDS = 15

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def live_processes_in_group(pgid: int) -> list[str]:
    """The processes of the group that have not exited (zombies waiting for a reaper have)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited while we looked
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its closing parenthesis.
        state, _ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            live.append(text[: text.rindex(")") + 1])
    return live


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def run_env(tmp_path_factory) -> dict[str, str]:
    """The embedded defaults, with the database and the uploads in a folder of this test's own (one
    for both signals: the second run finds the demo loaded and starts at once)."""
    folder = tmp_path_factory.mktemp("make_run")
    clean = {name: value for name, value in os.environ.items() if name not in settings_variables()}
    return {**clean, "SQLITE_PATH": str(folder / "db.sqlite3"), "MEDIA_ROOT": str(folder / "media")}


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT (Ctrl-C)"])
def test_a_signal_to_the_process_group_of_make_run_stops_the_server(run_env, stop_signal, tmp_path):
    port = free_port()
    log = tmp_path / "make-run.log"
    with log.open("w") as output:
        # Its own session, as a terminal gives it: Ctrl-C signals the terminal's whole foreground group.
        make = subprocess.Popen(
            ["make", "run", f"PORT={port}"], cwd=PROJECT_ROOT, env=run_env, start_new_session=True, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        until(lambda: answers(f"http://127.0.0.1:{port}/health/") or make.poll() is not None, SERVING_WITHIN_SECONDS, "make run serves")
        assert make.poll() is None, log.read_text()
        assert "Log in at " in log.read_text()

        os.killpg(make.pid, stop_signal)

        until(lambda: not live_processes_in_group(make.pid), STOPPED_WITHIN_SECONDS, "every process of make run exits")
        assert make.wait(timeout=STOPPED_WITHIN_SECONDS) != 0
        assert not answers(f"http://127.0.0.1:{port}/health/")
    finally:
        if live_processes_in_group(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
        make.wait(timeout=STOPPED_WITHIN_SECONDS)
