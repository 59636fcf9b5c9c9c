"""Fault suite: the labeling load and the Nucleus sync through a killed worker, a Redis outage and a
failing Nucleus; then every finished annotation must be on the fake Nucleus with its latest label.

Not a test. Run from the project folder with the venv's python (figures: bench/README.md):

    .venv/bin/python bench/fault_suite.py run                  # the scenario, ~6 min; JSON summary
    .venv/bin/python bench/fault_suite.py memory --annotations 100000   # a Celery worker's RSS after syncing 100k

`run`, end to end, on a frozen snapshot of HEAD (`git archive`, as `bench/queue_load.py snapshot`):
  1. PostgreSQL database `bench_faults` dropped and created (queue_load's setup: migrate, one images
     dataset with the required single-label taxonomy `clothing_type`, N items, labelers with tokens);
     its own Redis (`redis-server --port 6390 --save '' --appendonly no`: a restart loses every
     queued message); a standalone fake Nucleus process (`python -m tests.fake_nucleus`) holding the
     same items, the dataset linked to it;
  2. gunicorn serving the snapshot, 2 Celery workers (`--pool=solo`) and `celery beat` sweeping every
     5 s, with short claim, timeout and backoff settings (SYNC_ENV below);
  3. labeler threads in a closed loop of next -> think -> submit, and one relabeller that submits
     again, with another label, items already submitted (going back, as the labeling page does);
  4. during the load: SIGKILL of the worker that is sending a batch (the fake holds that request), and
     a restart; Redis shut down for 20 s and started again (empty); the fake answering 429 with
     Retry-After, then 503 for every request, then 500, for about a minute in all;
  5. the load stops; the sync drains (until nothing is pending, or a timeout);
  6. checks: every finished annotation is on the fake exactly once per (reference_id, taxonomy_name)
     with its latest label and nothing else is there; every one `synced` with `synced_version ==
     version`; every 200 submit's label is the annotation's label (the last one sent); no 5xx (and no
     failed request) from the web, in particular while Redis was down; retries counted (the fake's
     faulted requests, the workers' "will be retried" lines); RSS of the workers and web workers.

A JSON summary is printed and appended to STATE/results.jsonl.
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from argparse import Namespace
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.fake_nucleus's remote client
import queue_load  # noqa: E402  (the setup, server and /proc helpers of the queue benchmark)

PROJECT = queue_load.PROJECT
DEFAULT_STATE = Path("/tmp/bench-faults")
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_faults"
API_KEY = "bench-faults-key"
TAXONOMY, LABELS = queue_load.TAXONOMY, queue_load.LABELS
# The sync's settings for the suite: faults must be survived within minutes, not hours.
SYNC_ENV = {
    "NUCLEUS_API_KEY": API_KEY,
    "NUCLEUS_TIMEOUT_SECONDS": "5",
    "NUCLEUS_SYNC_CLAIM_SECONDS": "12",  # a killed worker's batch is sent again after this
    "NUCLEUS_SYNC_MAX_ATTEMPTS": "30",  # a minute of faults, retried every few seconds, must not exhaust it
    "NUCLEUS_SYNC_BACKOFF_BASE_SECONDS": "1",
    "NUCLEUS_SYNC_BACKOFF_MAX_SECONDS": "8",
    "NUCLEUS_SYNC_SWEEP_SECONDS": "5",
    "NUCLEUS_BATCH_SIZE": "500",  # more batches in flight, so a kill lands mid-batch
    "CELERY_TASK_TIME_LIMIT": "120",
    "CELERY_VISIBILITY_TIMEOUT": "300",
    "REMOTE_IMAGE_SIZES": "false",
}


# --- processes ----------------------------------------------------------------------------------


class Procs:
    """The processes this script started, each in its own session; stopped by pid at the end."""

    def __init__(self, state: Path):
        self.state = state
        self.running: dict[str, subprocess.Popen] = {}
        for old in state.glob("*.log"):  # the logs are counted: none from an earlier run
            old.unlink()

    def start(self, name: str, command: list[str], *, env: dict, cwd: Path) -> subprocess.Popen:
        log = open(self.state / f"{name}.log", "ab")
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.running[name] = process
        return process

    def log(self, name: str) -> str:
        path = self.state / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str, sig=signal.SIGTERM, wait: float = 15) -> None:
        process = self.running.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"Timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def redis_start(procs: Procs, port: int) -> None:
    procs.start("redis", ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
                env=dict(os.environ), cwd=procs.state)
    wait_for(lambda: port_open(port), 10, f"redis on {port}")


def redis_shutdown(procs: Procs, port: int) -> None:
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
    procs.running["redis"].wait(timeout=10)
    procs.running.pop("redis")


def start_worker(procs: Procs, name: str, env: dict, code: Path) -> subprocess.Popen:
    marker = procs.state / f"{name}.log"
    before = len(marker.read_bytes()) if marker.exists() else 0
    process = procs.start(
        name,
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-n", f"{name}@%h",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
        env=env, cwd=code,
    )
    wait_for(lambda: " ready." in marker.read_bytes()[before:].decode(errors="replace") or process.poll() is not None, 60,
             f"{name} to start")
    if process.poll() is not None:
        raise SystemExit(f"{name} exited: {procs.log(name)[-2000:]}")
    return process


def connected_to(pid: int, port: int) -> bool:
    """Whether the process has an open TCP connection to 127.0.0.1:port (ss -tnp)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", "dst", f"127.0.0.1:{port}"], capture_output=True, text=True).stdout
    return f"pid={pid}," in out


# --- setup --------------------------------------------------------------------------------------


def snapshot(state: Path) -> Path:
    buffer = StringIO()
    with redirect_stdout(buffer):
        queue_load.cmd_snapshot(Namespace(state=state))
    return Path(json.loads(buffer.getvalue())["code"])


def bench_args(a, code: Path) -> Namespace:
    return Namespace(state=a.state, database_url=a.database_url, code=code, items=a.items, labelers=a.labelers, fill="sql",
                     port=a.port, workers=a.web_workers, worker_class="sync", threads=1)


def setup(a, procs: Procs, code: Path):
    """Redis, the fake, the database (linked to a dataset on the fake holding the same items)."""
    from tests.fake_nucleus import FakeNucleusRemote

    if port_open(a.redis_port):
        raise SystemExit(f"Something already listens on {a.redis_port}: the suite stops and starts its own Redis there.")
    redis_start(procs, a.redis_port)
    fake_process = procs.start("fake", [sys.executable, "-u", "-m", "tests.fake_nucleus", "--port", "0", "--api-key", API_KEY,
                                        "--latency", str(a.fake_latency)], env=dict(os.environ), cwd=code)
    endpoint = wait_for(lambda: procs.log("fake").strip().splitlines()[0] if procs.log("fake").strip() else None, 10, "the fake")
    fake = FakeNucleusRemote(endpoint)
    os.environ.update(SYNC_ENV, NUCLEUS_ENDPOINT=fake.endpoint, CELERY_BROKER_URL=f"redis://127.0.0.1:{a.redis_port}/0")
    args = bench_args(a, code)
    with redirect_stdout(StringIO()):
        queue_load.cmd_setup(args)
    state = queue_load.load_state(args)
    nucleus_id = fake.create_dataset(name="bench faults")
    for start in range(0, a.items, 20_000):
        errors = fake.add_items(nucleus_id, [{"reference_id": f"image_{n}", "image_url": f"https://images.example.com/{n}.jpg"}
                                             for n in range(start, min(a.items, start + 20_000))])
        assert not errors, errors[:3]
    with queue_load.pg_connect(a.database_url, autocommit=True) as connection:
        connection.execute("UPDATE labeling_dataset SET nucleus_dataset_id = %s WHERE id = %s", [nucleus_id, state["dataset_id"]])
    return fake, fake_process, state, nucleus_id, args


# --- load ---------------------------------------------------------------------------------------


class Load:
    """Labeler threads (next -> think -> submit) and one relabeller, recording every request:
    (wall time, kind, HTTP status or exception name, seconds)."""

    def __init__(self, base: str, dataset_id: int, tokens: list[str], think_ms: tuple[float, float], relabel_per_s: float):
        self.base, self.dataset_id, self.tokens = base, dataset_id, tokens
        self.think_ms, self.relabel_per_s = think_ms, relabel_per_s
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[tuple[float, str, str, float]] = []
        self.last_label: dict[str, str] = {}  # reference_id -> label of its last 200 submit
        self.submitted: list[tuple[str, int]] = []  # (reference_id, labeler index) of first submits
        self.relabels = 0
        self.threads = [threading.Thread(target=self.labeler, args=(i,), daemon=True) for i in range(len(tokens))]
        self.threads.append(threading.Thread(target=self.relabeller, daemon=True))

    def session(self, token: str):
        import requests

        session = requests.Session()
        session.headers["Authorization"] = "Token " + token
        return session

    def post(self, session, kind: str, path: str, body=None):
        import requests

        started = time.time()
        try:
            response = session.post(f"{self.base}/api/v1/datasets/{self.dataset_id}/{path}", json=body, timeout=30)
            status = str(response.status_code)
        except requests.RequestException as error:
            response, status = None, type(error).__name__
        with self.lock:
            self.requests.append((started, kind, status, time.time() - started))
        return response

    def labeler(self, idx: int) -> None:
        session, rng = self.session(self.tokens[idx]), random.Random(idx)
        while not self.stop.is_set():
            response = self.post(session, "next", "next/")
            if response is None or response.status_code != 200:
                if response is not None and response.status_code == 204:
                    return
                time.sleep(0.2)
                continue
            ref = response.json()["reference_id"]
            time.sleep(rng.uniform(*self.think_ms) / 1000)
            label = rng.choice(LABELS)
            body = {"reference_id": ref, "annotations": [{"taxonomy_name": TAXONOMY, "label": label}]}
            response = self.post(session, "submit", "submit/", body)
            if response is not None and response.status_code == 200:
                with self.lock:
                    self.last_label[ref] = label
                    self.submitted.append((ref, idx))

    def relabeller(self) -> None:
        """One thread, so that two relabels of one item never race: the last 200 is the truth."""
        sessions = [self.session(token) for token in self.tokens]
        rng = random.Random(-1)
        while not self.stop.wait(1 / self.relabel_per_s):
            with self.lock:
                if not self.submitted:
                    continue
                ref, idx = rng.choice(self.submitted)
                label = rng.choice([name for name in LABELS if name != self.last_label[ref]])
            body = {"reference_id": ref, "annotations": [{"taxonomy_name": TAXONOMY, "label": label}]}
            # The same labeler goes back and changes the answer.
            response = self.post(sessions[idx], "relabel", "submit/", body)
            if response is not None and response.status_code == 200:
                with self.lock:
                    self.last_label[ref] = label
                    self.relabels += 1

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=40)

    def window(self, start: float, end: float) -> dict:
        """What the web answered to requests sent in [start, end)."""
        with self.lock:
            rows = [row for row in self.requests if start <= row[0] < end]
        statuses: dict[str, int] = {}
        for _, kind, status, _ in rows:
            statuses[f"{kind}:{status}"] = statuses.get(f"{kind}:{status}", 0) + 1
        submits = [seconds for _, kind, status, seconds in rows if kind in ("submit", "relabel") and status == "200"]
        return {
            "requests": len(rows),
            "statuses": statuses,
            "5xx": sum(n for key, n in statuses.items() if key.split(":")[1].startswith("5")),
            "not_2xx": sum(n for key, n in statuses.items() if not key.split(":")[1].startswith("2")),
            "submit": queue_load.summarize(submits),
        }


# --- the scenario -------------------------------------------------------------------------------


def pending_counts(url: str, dataset_id: int) -> dict:
    with queue_load.pg_connect(url) as connection:
        row = connection.execute(
            "SELECT count(*) FILTER (WHERE sync_state = 'pending'), count(*) FILTER (WHERE sync_state = 'failed'), "
            "count(*) FILTER (WHERE sync_claim IS NOT NULL), COALESCE(max(sync_attempts), 0), count(*) "
            "FROM labeling_categoryannotation WHERE dataset_id = %s AND status = 'finished'", [dataset_id]).fetchone()
    return dict(zip(["pending", "failed", "claimed", "max_attempts", "finished"], row))


def kill_a_sending_worker(a, procs: Procs, fake, fake_port: int, env: dict, code: Path, log: dict) -> None:
    """Hold the next annotate request at the fake, SIGKILL the worker that sent it, start it again."""
    sent_before = len(fake.requests_to("annotate"))
    fake.slow_next(a.hold_seconds, route="annotate")
    wait_for(lambda: len(fake.requests_to("annotate")) > sent_before, 60, "an annotate request to hold", interval=0.3)
    candidates = [name for name in ("worker1", "worker2") if connected_to(procs.running[name].pid, fake_port)]
    name = candidates[0] if candidates else "worker1"
    claimed = pending_counts(a.database_url, log["dataset_id"])["claimed"]
    procs.stop(name, sig=signal.SIGKILL)
    log["kill"] = {"t": round(time.time() - log["t0"], 1), "worker": name, "was_connected_to_fake": bool(candidates),
                   "claimed_rows_at_kill": claimed}
    time.sleep(2)
    start_worker(procs, name, env, code)


def fault_schedule(a, procs: Procs, fake, fake_port: int, env: dict, code: Path, log: dict) -> None:
    t0 = log["t0"]

    def at(seconds: float) -> None:
        time.sleep(max(0.0, t0 + seconds - time.time()))

    at(a.kill_at)
    kill_a_sending_worker(a, procs, fake, fake_port, env, code, log)

    at(a.redis_at)
    down = time.time()
    redis_shutdown(procs, a.redis_port)
    time.sleep(a.redis_down)
    redis_start(procs, a.redis_port)
    log["redis_outage"] = {"start": down, "end": time.time(), "t": round(down - t0, 1), "seconds": round(time.time() - down, 1)}

    at(a.nucleus_at)
    started = time.time()
    before = len(fake.requests_to("annotate"))
    fake.fail_next(429, times=a.throttled, route="annotate", retry_after=a.retry_after)
    try:
        wait_for(lambda: len(fake.requests_to("annotate")) - before >= a.throttled, a.window, "the 429s to be used", interval=1)
    except SystemExit:
        pass
    throttled = min(a.throttled, len(fake.requests_to("annotate")) - before)
    windows = {}
    for status in (503, 500):
        count = len(fake.requests)
        fake.fail_for(a.window, status=status)
        time.sleep(a.window)
        windows[str(status)] = len(fake.requests) - count  # every request in the window was answered `status`
    fake.reset_faults()  # 429s not used up
    log["nucleus_faults"] = {"t": round(started - t0, 1), "seconds": round(time.time() - started, 1),
                             "answered_429_retry_after": throttled, "retry_after_s": a.retry_after,
                             "window_s": a.window, "answered_in_windows": windows}


def cmd_run(a) -> None:
    a.state.mkdir(parents=True, exist_ok=True)
    code = snapshot(a.state)
    procs = Procs(a.state)
    log: dict = {"label": a.label, "code": code.name}
    try:
        fake, fake_process, state, nucleus_id, args = setup(a, procs, code)
        env = queue_load.django_env(args)
        fake_port = int(re.search(r":(\d+)/", fake.endpoint).group(1))
        with redirect_stdout(StringIO()):
            queue_load.cmd_serve(args)
        server_pid = queue_load._server_pid(a.state)
        for name in ("worker1", "worker2"):
            start_worker(procs, name, env, code)
        procs.start("beat", [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO",
                             "-s", str(a.state / "celerybeat-schedule")], env=env, cwd=code)
        log["dataset_id"] = state["dataset_id"]
        tokens = [labeler["token"] for labeler in state["labelers"][: a.labelers]]
        load = Load(f"http://127.0.0.1:{a.port}", state["dataset_id"], tokens, a.think_ms, a.relabel_per_s)
        log["t0"] = time.time()
        load.start()
        samples = []
        faults = threading.Thread(target=fault_schedule, args=(a, procs, fake, fake_port, env, code, log), daemon=True)
        faults.start()
        while time.time() < log["t0"] + a.duration or faults.is_alive():
            samples.append((round(time.time() - log["t0"], 1), pending_counts(a.database_url, state["dataset_id"])))
            time.sleep(2)
        load.finish()
        load_end = time.time()

        # Drain: the sweep brings back everything the faults left behind.
        drained = None
        while time.time() < load_end + a.drain_timeout:
            counts = pending_counts(a.database_url, state["dataset_id"])
            samples.append((round(time.time() - log["t0"], 1), counts))
            if counts["pending"] == 0:
                drained = round(time.time() - load_end, 1)
                break
            time.sleep(1)
        memory = {name: queue_load.process_memory(procs.running[name].pid) for name in ("worker1", "worker2")}
        memory["gunicorn_workers"] = queue_load.process_memory(server_pid, children=True)
        summary = {
            "label": a.label,
            "date": queue_load.machine()["date"],
            "code": code.name,
            "items": a.items,
            "labelers": a.labelers,
            "think_ms": list(a.think_ms),
            "load_seconds": round(load_end - log["t0"], 1),
            "sync_env": SYNC_ENV,
            "kill": log.get("kill"),
            "redis_outage": {k: v for k, v in log.get("redis_outage", {}).items() if k in ("t", "seconds")},
            "nucleus_faults": log.get("nucleus_faults"),
            "drained_after_s": drained,
            "web": load.window(0, float("inf")),
            "web_during_redis_outage": load.window(log["redis_outage"]["start"], log["redis_outage"]["end"]) if "redis_outage" in log else None,
            "submits_ok": len(load.submitted),
            "relabels_ok": load.relabels,
            "max_sync_attempts_seen": max(counts["max_attempts"] for _, counts in samples),
            "checks": check(a.database_url, state["dataset_id"], fake, nucleus_id, load.last_label),
            "retries": retries(procs, fake),

            "memory_kb": memory,
            "pending_samples": samples[:: max(1, len(samples) // 40)],
        }
        summary["ok"] = all(summary["checks"]["held"].values()) and summary["web"]["5xx"] == 0
        text = json.dumps(summary)
        print(text)
        with open(a.state / "results.jsonl", "a") as f:
            f.write(text + "\n")
    finally:
        with redirect_stdout(StringIO()):
            queue_load.cmd_stop(Namespace(state=a.state))
        procs.stop_all()
        if not a.keep:
            queue_load.cmd_drop(Namespace(database_url=a.database_url))


def check(url: str, dataset_id: int, fake, nucleus_id: str, last_label: dict) -> dict:
    """The database, the fake and the load generator's record must agree."""
    with queue_load.pg_connect(url) as connection:
        rows = connection.execute(
            "SELECT i.reference_id, t.taxonomy_name, l.name, a.sync_state, a.version, a.synced_version "
            "FROM labeling_categoryannotation a JOIN labeling_item i ON i.id = a.item_id "
            "JOIN taxonomies_taxonomy t ON t.id = a.taxonomy_id JOIN taxonomies_label l ON l.id = a.label_id "
            "WHERE a.dataset_id = %s AND a.status = 'finished'", [dataset_id]).fetchall()
    database = {(ref, taxonomy): label for ref, taxonomy, label, *_ in rows}
    on_fake = fake.annotations(nucleus_id)
    fake_labels = {key: payload["label"] for key, payload in on_fake.items()}
    not_synced = [(ref, state, version, synced) for ref, _, _, state, version, synced in rows if state != "synced" or synced != version]
    missing = [key for key in database if key not in fake_labels]
    extra = [key for key in fake_labels if key not in database]
    stale = [(key, fake_labels[key], label) for key, label in database.items() if key in fake_labels and fake_labels[key] != label]
    submitted_wrong = [(ref, label, database.get((ref, TAXONOMY))) for ref, label in last_label.items() if database.get((ref, TAXONOMY)) != label]
    versions = [version for *_, version, _ in rows]
    return {
        "finished_annotations": len(database),
        "relabelled_annotations": sum(1 for v in versions if v > 1),
        "on_fake": len(fake_labels),
        "held": {
            "every_finished_annotation_on_fake": not missing,
            "nothing_else_on_fake": not extra,
            "latest_label_on_fake": not stale,
            "all_synced_at_their_version": not not_synced,
            "every_200_submit_in_database_with_its_last_label": not submitted_wrong,
        },
        "counts": {"missing_on_fake": len(missing), "extra_on_fake": len(extra), "stale_label_on_fake": len(stale),
                   "not_synced_or_old_version": len(not_synced), "submits_not_in_database": len(submitted_wrong)},
        "samples": {"missing": missing[:5], "extra": extra[:5], "stale": stale[:5], "not_synced": not_synced[:5],
                    "submits_not_in_database": submitted_wrong[:5]},
    }


def retries(procs: Procs, fake) -> dict:
    requests = fake.requests
    annotate = [r for r in requests if r.route == "annotate"]
    payloads = sum(len(r.json.get("annotations", [])) for r in annotate if isinstance(r.json, dict))
    logs = "".join(procs.log(name) for name in ("worker1", "worker2"))
    return {
        "requests_to_fake": len(requests),
        "annotate_requests": len(annotate),
        "annotate_payloads_sent": payloads,
        "worker_log_will_be_retried": len(re.findall(r"will be retried in", logs)),
        "worker_log_broker_connection_lost": len(re.findall(r"[Cc]onnection to broker lost|Cannot connect to redis", logs)),
        "beat_log_sweeps_sent": procs.log("beat").count("Scheduler: Sending due task"),
    }


# --- memory of a worker after syncing N annotations -----------------------------------------------


def cmd_memory(a) -> None:
    """One worker syncs N finished annotations (written by SQL, pending) to the fake; its RSS after."""
    a.state.mkdir(parents=True, exist_ok=True)
    code = snapshot(a.state)
    procs = Procs(a.state)
    a.items, a.labelers = a.annotations, 1
    try:
        fake, _, state, nucleus_id, args = setup(a, procs, code)
        os.environ["NUCLEUS_BATCH_SIZE"] = str(a.batch_size)
        env = queue_load.django_env(args)
        with queue_load.pg_connect(a.database_url, autocommit=True) as connection:
            connection.execute(
                "INSERT INTO labeling_categoryannotation (dataset_id, item_id, taxonomy_id, label_id, metadata, status, created_at, "
                "updated_at, finished_at, version, synced_version, sync_state, sync_attempts, sync_error) "
                "SELECT i.dataset_id, i.id, t.id, (SELECT id FROM taxonomies_label WHERE taxonomy_id = t.id ORDER BY id "
                "OFFSET (i.id %% 4) LIMIT 1), '{}', 'finished', now(), now(), now(), 1, 0, 'pending', 0, '' "
                "FROM labeling_item i JOIN taxonomies_taxonomy t ON t.dataset_id = i.dataset_id WHERE i.dataset_id = %s",
                [state["dataset_id"]])
        worker = start_worker(procs, "worker1", env, code)
        ready = queue_load.process_memory(worker.pid)
        started = time.time()
        procs.start("beat", [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO",
                             "-s", str(a.state / "celerybeat-schedule")], env=env, cwd=code)
        wait_for(lambda: pending_counts(a.database_url, state["dataset_id"])["pending"] == 0, a.drain_timeout,
                 "the sync of every annotation", interval=2)
        synced_s = time.time() - started
        after = queue_load.process_memory(worker.pid)
        summary = {
            "label": a.label, "date": queue_load.machine()["date"], "code": code.name, "annotations": a.annotations,
            "batch_size": a.batch_size, "sync_seconds_incl_first_sweep": round(synced_s, 1),
            "on_fake": len(fake.labels(nucleus_id)), "counts": pending_counts(a.database_url, state["dataset_id"]),
            "worker_memory_kb_when_ready": ready, "worker_memory_kb_after_sync": after,
        }
        text = json.dumps(summary)
        print(text)
        with open(a.state / "results.jsonl", "a") as f:
            f.write(text + "\n")
    finally:
        procs.stop_all()
        if not a.keep:
            queue_load.cmd_drop(Namespace(database_url=a.database_url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--database-url", default=DATABASE_URL, help="dropped and created; bench_* on loopback only")
    parser.add_argument("--redis-port", type=int, default=6390, help="this suite's own Redis, stopped and started")
    parser.add_argument("--port", type=int, default=8094)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--fake-latency", type=float, default=0.02)
    parser.add_argument("--drain-timeout", type=float, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--label", default="")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--labelers", type=int, default=16)
    p.add_argument("--think-ms", type=queue_load.parse_think, default=(100.0, 400.0))
    p.add_argument("--relabel-per-s", type=float, default=3.0)
    p.add_argument("--duration", type=float, default=200, help="seconds of load (longer if the faults take longer)")
    p.add_argument("--kill-at", type=float, default=20)
    p.add_argument("--hold-seconds", type=float, default=4, help="how long the fake holds the request of the worker to kill")
    p.add_argument("--redis-at", type=float, default=45)
    p.add_argument("--redis-down", type=float, default=20)
    p.add_argument("--nucleus-at", type=float, default=85)
    p.add_argument("--throttled", type=int, default=6, help="annotate requests answered 429 with Retry-After")
    p.add_argument("--retry-after", type=int, default=3)
    p.add_argument("--window", type=float, default=25, help="seconds of 503, then as many of 500, for every request")
    p = sub.add_parser("memory")
    p.add_argument("--annotations", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=5000, help="NUCLEUS_BATCH_SIZE (the production default)")
    a = parser.parse_args()
    queue_load.database_name(a.database_url)
    {"run": cmd_run, "memory": cmd_memory}[a.cmd](a)


if __name__ == "__main__":
    main()
