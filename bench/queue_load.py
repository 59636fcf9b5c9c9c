"""Benchmark: the labeling queue (next + submit) under concurrent labelers, gunicorn + PostgreSQL.

Not a test. Run from the project folder with the venv's python (figures: bench/queue_load.md):

    .venv/bin/python bench/queue_load.py all --items 100000                 # setup, SQL counts, serve, c=1/8/32, think time
    .venv/bin/python bench/queue_load.py all --items 1000000 --concurrency 32 --no-think-run
    .venv/bin/python bench/queue_load.py drop                               # drop the bench database

or step by step (each step reads what the previous ones left in --state, /tmp/bench-queue):

    setup --items N      drop + create database `bench_queue`, migrate, one images dataset with one required
                         single-label taxonomy `clothing_type` (shirt, pants, dress, shoes), N items and their
                         open tasks written by INSERT ... SELECT generate_series (or --fill service: items_import),
                         C labelers (members, each with a DRF token), VACUUM ANALYZE
    sqlcount             queries per next / submit in-process (Django test client + CaptureQueriesContext), with
                         0 and 31 other labelers holding a task; also round trips to PostgreSQL (libpq trace) and
                         EXPLAIN ANALYZE of every query of the last next and submit
    serve / stop         gunicorn config.wsgi:application on 127.0.0.1 (--workers, --worker-class, --threads)
    reset                every task open again, no annotations, skips or leases; VACUUM ANALYZE
    load                 C labeler threads, closed loop POST next -> POST submit (optional think time between
                         them, holding the task), warm-up + measured window; percentiles, pairs/s, errors,
                         double assignments, CPU; then a DB check
    table                the results file as markdown rows

The load generator follows Label Studio's peer benchmark (/work/shared/peer/label-studio/loadgen.py: one
thread + one requests.Session + one token per labeler, closed loop, bounded by time and by pair count,
double-assignment table, /proc CPU accounting, linear-interpolated percentiles); `pct`, `summarize` and
the CPU snapshot are adapted from it. Our endpoints differ: next is a POST that answers 200 with a
`reference_id`, or 204 when nothing is left; submit answers 200.
"""

import argparse
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_queue"
DEFAULT_STATE = Path("/tmp/bench-queue")
DEFAULT_PORT = 8091
DATASET_NAME = "bench queue"
TAXONOMY = "clothing_type"
LABELS = ["shirt", "pants", "dress", "shoes"]  # the 4 choices of Label Studio's run
REQUEST_TIMEOUT = 60
# Label Studio 1.23.2 on this machine, 4 sync gunicorn workers, sequential sampling
# (/work/shared/peer/label-studio/RESULTS.md, main table and SQL table).
LABEL_STUDIO = {
    "pairs_per_s": {(10_000, 32): 11.57, (100_000, 1): 5.90, (100_000, 8): 10.08, (100_000, 32): 9.73},
    "next_p99_ms": {(10_000, 32): 1742.9, (100_000, 1): 292.8, (100_000, 8): 808.1, (100_000, 32): 2517.0},
    "pair_p99_ms": {(10_000, 32): 3004.0, (100_000, 1): 345.9, (100_000, 8): 1164.8, (100_000, 32): 3789.7},
    "queries_next": 44,
    "queries_next_31_holders": 168,
    "queries_submit": 73,
}


# --- environment --------------------------------------------------------------------------------


# The files a next/submit request runs through: hashed into every result, because the working tree
# changes while others work in it.
HOT_PATH = [
    "labeling/api/queue.py", "labeling/api/base.py", "labeling/services/queue.py", "labeling/services/ownership.py", "labeling/services/annotations.py",
    "labeling/selectors.py", "labeling/models.py", "config/settings.py", "config/urls.py", "labeling/api/urls.py",
]


def code_fingerprint(code: Path) -> dict:
    """Which code was measured: the snapshot's commit, or the checkout's HEAD and whether its hot-path
    files differ from it; plus a hash of the hot-path files as they are on disk."""
    import hashlib

    digest = hashlib.sha1()
    for name in HOT_PATH:
        path = code / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"-"))
    found = {"dir": str(code), "hot_path_sha1": digest.hexdigest()[:12]}
    if (code / ".commit").exists():
        found["commit"] = (code / ".commit").read_text().strip()
        found["snapshot"] = True
    else:
        git = lambda *a: subprocess.run(["git", "-C", str(code), *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
        found["commit"] = git("rev-parse", "--short", "HEAD")
        found["hot_path_changed_since_commit"] = git("status", "--porcelain", "--", *HOT_PATH).splitlines()
    return found


def cmd_snapshot(args) -> None:
    """A frozen copy of the committed code (git archive HEAD) to serve, so that nobody's edit in the
    working tree lands in the middle of a measurement."""
    commit = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    target = args.state / f"code-{commit}"
    if not target.exists():
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(PROJECT), "archive", "HEAD"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        (target / ".commit").write_text(commit + "\n")
    print(json.dumps({"code": str(target), "commit": commit}))


def django_env(args) -> dict:
    """The settings the server and the in-process steps run with: production mode, plain http on
    loopback, persistent connections (DATABASE_CONN_MAX_AGE=60)."""
    return {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "DATABASE_CONN_MAX_AGE": "60",
        "DEBUG": "false",
        "SECRET_KEY": secret_key(args.state),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "REMOTE_IMAGE_SIZES": "false",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }


def secret_key(state: Path) -> str:
    path = state / "secret_key"
    if not path.exists():
        state.mkdir(parents=True, exist_ok=True)
        path.write_text("bench-only-" + secrets.token_hex(24))
    return path.read_text()


def database_name(url: str) -> str:
    name = urlparse(url).path.lstrip("/")
    if not re.fullmatch(r"bench_\w+", name):
        raise SystemExit(f"Refusing to drop or reset {name!r}: the benchmark only touches databases named bench_*.")
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"Refusing a database on {host}: loopback only.")
    return name


def pg_connect(url: str, **kwargs):
    import psycopg

    return psycopg.connect(url, **kwargs)


def load_state(args) -> dict:
    path = args.state / "state.json"
    if not path.exists():
        raise SystemExit(f"No {path}: run `setup` first.")
    return json.loads(path.read_text())


def machine() -> dict:
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }


# --- setup --------------------------------------------------------------------------------------


def cmd_setup(args) -> None:
    name = database_name(args.database_url)
    args.state.mkdir(parents=True, exist_ok=True)
    (args.state / "predone.json").unlink(missing_ok=True)
    with pg_connect(args.database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    env = django_env(args)
    started = time.perf_counter()
    subprocess.run([sys.executable, str(args.code / "manage.py"), "migrate", "-v", "0"], env=env, check=True, cwd=args.code)
    migrated = time.perf_counter() - started
    found = in_django(args, "fill", str(args.items), str(args.labelers), args.fill)
    started = time.perf_counter()
    with pg_connect(args.database_url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    found["vacuum_analyze_s"] = round(time.perf_counter() - started, 2)
    found["migrate_s"] = round(migrated, 2)
    found["database_url"] = args.database_url
    (args.state / "state.json").write_text(json.dumps(found, indent=1))
    print(json.dumps({key: value for key, value in found.items() if key != "labelers"}))


def in_django(args, step: str, *step_args: str) -> dict:
    """Run one step in a new process: Django reads its settings (and database) from the environment."""
    done = subprocess.run(
        [sys.executable, __file__, "--state", str(args.state), "--code", str(args.code), "--django-step", step, *step_args],
        env=django_env(args),
        cwd=args.code,
        capture_output=True,
        text=True,
    )
    if done.stderr.strip():
        print(done.stderr.strip()[-3000:], file=sys.stderr)
    if done.returncode:
        raise SystemExit(f"step {step} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def django_step(state: Path, code: Path, step: str, *step_args: str) -> None:
    sys.path.insert(0, str(code))
    import django

    django.setup()
    if step == "fill":
        print(json.dumps(fill(int(step_args[0]), int(step_args[1]), step_args[2])))
    elif step == "sqlcount":
        print(json.dumps(sqlcount(
            state, holders_list=[int(h) for h in step_args[0].split(",")], calls=int(step_args[1]), cpu_pairs=int(step_args[2])
        )))
    else:
        raise SystemExit(f"Unknown step {step!r}")


def fill(items: int, labelers: int, how: str) -> dict:
    """The dataset Label Studio's run had: one required single-label taxonomy with 4 labels, N items
    with their open queue tasks, labelers with tokens."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from rest_framework.authtoken.models import Token

    from labeling.models import DatasetMember, Item, Task
    from labeling.services.datasets import dataset_create, dataset_member_set
    from labeling.services.items import items_import
    from taxonomies.services import taxonomy_create

    User = get_user_model()
    admin = User.objects.create_user(username="bench-admin")
    dataset = dataset_create(name=DATASET_NAME, kind="images", created_by=admin)
    taxonomy_create(dataset=dataset, taxonomy_name=TAXONOMY, labels=LABELS, required=True)
    tokens = []
    for n in range(1, labelers + 1):
        # No password: create_user then stores an unusable one without running the hasher.
        user = User.objects.create_user(username=f"labeler{n:02d}")
        dataset_member_set(dataset=dataset, user=user, role=DatasetMember.Role.LABELER)
        tokens.append({"username": user.username, "user_id": user.id, "token": Token.objects.create(user=user).key})

    started = time.perf_counter()
    if how == "sql":
        # The rows items_import would write (same shapes as bench/import_items.py's rows: https
        # image_url, unique reference_id image_<n>, small metadata), written by the database itself:
        # 1M rows through the service would take minutes and measure the import, not the queue.
        item, task = Item._meta, Task._meta
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {item.db_table} (dataset_id, reference_id, image, image_url, metadata, created_at) "
                "SELECT %s, 'image_' || n, '', 'https://images.example.com/' || n || '.jpg', "
                "jsonb_build_object('split', (ARRAY['train', 'validation', 'test'])[n %% 3 + 1], "
                "'camera', jsonb_build_object('id', n %% 7, 'side', 'front')), now() "
                "FROM generate_series(0, %s - 1) AS n ORDER BY n",
                [dataset.id, items],
            )
            # Queue order = item order, as items_import leaves it.
            cursor.execute(
                f"INSERT INTO {task.db_table} (dataset_id, item_id, state) "
                f"SELECT dataset_id, id, %s FROM {item.db_table} WHERE dataset_id = %s ORDER BY id",
                [Task.State.OPEN, dataset.id],
            )
    elif how == "service":
        chunk = 10_000
        for start in range(0, items, chunk):
            rows = [
                {"reference_id": f"image_{n}", "image_url": f"https://images.example.com/{n}.jpg", "metadata": {"split": "train"}}
                for n in range(start, min(items, start + chunk))
            ]
            items_import(dataset=dataset, rows=rows)
    else:
        raise SystemExit(f"Unknown --fill {how!r}; use sql or service.")
    filled = time.perf_counter() - started
    return {
        "dataset_id": dataset.id,
        "admin_id": admin.id,
        "items": Item.objects.filter(dataset=dataset).count(),
        "tasks": Task.objects.filter(dataset=dataset).count(),
        "fill": how,
        "fill_s": round(filled, 2),
        "labelers": tokens,
    }


# --- reset --------------------------------------------------------------------------------------

def reset_statements(state: Path) -> list[tuple[str, list]]:
    """Back to an unlabeled queue: no annotations, skips or leases, every task open; then the first
    `predone` tasks (see `reset --done-fraction`) done by the admin, without annotations, as in a
    dataset that is partly labeled: done tasks sit at the front of the queue order."""
    found = json.loads((state / "state.json").read_text())
    predone = predone_count(state)
    # The id of the last pre-done task (0: none): ids are dense, from the INSERT ... SELECT of setup.
    last = (
        f"(SELECT COALESCE(max(id), 0) FROM (SELECT id FROM labeling_task WHERE dataset_id = {int(found['dataset_id'])} "
        f"ORDER BY id LIMIT {int(predone)}) AS front)"
    )
    return [
        ("DELETE FROM labeling_annotationlabel", []),
        ("DELETE FROM labeling_categoryannotation", []),
        ("DELETE FROM labeling_taskskip", []),
        # Only the rows a run touched (and pre-done rows no longer wanted), so a reset at 1M items
        # costs what the run did.
        ("UPDATE labeling_task SET state = 'open', holder_id = NULL, lease_expires_at = NULL, done_by_id = NULL, done_at = NULL "
         f"WHERE (state <> 'open' OR holder_id IS NOT NULL) AND NOT (done_by_id IS NOT DISTINCT FROM %s AND id <= {last})",
         [found["admin_id"]]),
        ("UPDATE labeling_task SET state = 'done', done_by_id = %s, done_at = now() "
         f"WHERE dataset_id = %s AND state = 'open' AND id <= {last}", [found["admin_id"], found["dataset_id"]]),
    ]


def cmd_reset(args) -> None:
    database_name(args.database_url)
    found = load_state(args)
    if args.done_fraction is not None:
        (args.state / "predone.json").write_text(json.dumps({"tasks": round(found["tasks"] * args.done_fraction)}))
    started = time.perf_counter()
    with pg_connect(args.database_url, autocommit=True) as connection:
        with connection.transaction():
            counts = [connection.execute(sql, params).rowcount for sql, params in reset_statements(args.state)]
        connection.execute("VACUUM ANALYZE")
    print(json.dumps({"reset": dict(zip(["annotation_labels", "annotations", "skips", "tasks_reopened", "tasks_predone"], counts)),
                      "predone": predone_count(args.state), "seconds": round(time.perf_counter() - started, 2)}))


def predone_count(state: Path) -> int:
    return json.loads((state / "predone.json").read_text())["tasks"] if (state / "predone.json").exists() else 0


# --- SQL counts (in-process) --------------------------------------------------------------------


def sqlcount(state: Path, *, holders_list: list[int], calls: int, cpu_pairs: int = 0) -> dict:
    """Queries of one next and one submit, through the whole Django stack (test client: middleware,
    DRF token auth, view, service), as the last labeler, after `holders` other labelers each took a
    task (as under load: the claim has to step over held rows).

    Two figures per request: queries Django runs (CaptureQueriesContext), and round trips to
    PostgreSQL (libpq trace: one ReadyForQuery per round trip), which adds what Django does not log:
    BEGIN/COMMIT of the atomic block and the connection health check (`SELECT 1`, once per request
    with CONN_MAX_AGE > 0 and conn_health_checks on). The test client does not send request_started,
    so `close_old_connections()` is called before each request, as the server's handler does."""
    from django.db import close_old_connections, connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    found = json.loads((state / "state.json").read_text())
    dataset_id, labelers = found["dataset_id"], found["labelers"]
    base = f"/api/v1/datasets/{dataset_id}"
    results = []
    for holders in holders_list:
        # The last labeler measures; at most all the others hold a task.
        holders = min(holders, len(labelers) - 1)
        with connection.cursor() as cursor:
            for sql, params in reset_statements(state):
                cursor.execute(sql, params)
        for holder in labelers[:holders]:
            response = Client(HTTP_AUTHORIZATION=f"Token {holder['token']}", SERVER_NAME="127.0.0.1").post(f"{base}/next/")
            assert response.status_code == 200, (response.status_code, response.content[:300])
        me = labelers[-1]
        client = Client(HTTP_AUTHORIZATION=f"Token {me['token']}", SERVER_NAME="127.0.0.1")
        rows, last = [], {}
        for call in range(calls):
            close_old_connections()
            with CaptureQueriesContext(connection) as next_queries, _round_trips() as next_trips:
                started = time.perf_counter()
                response = client.post(f"{base}/next/")
                next_ms = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (response.status_code, response.content[:300])
            body = {"reference_id": response.json()["reference_id"], "annotations": [{"taxonomy_name": TAXONOMY, "label": "shirt"}]}
            close_old_connections()
            with CaptureQueriesContext(connection) as submit_queries, _round_trips() as submit_trips:
                started = time.perf_counter()
                response = client.post(f"{base}/submit/", data=json.dumps(body), content_type="application/json")
                submit_ms = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (response.status_code, response.content[:300])
            rows.append({
                "next_queries": len(next_queries.captured_queries), "next_round_trips": next_trips["n"],
                "next_ms": round(next_ms, 1),
                "submit_queries": len(submit_queries.captured_queries), "submit_round_trips": submit_trips["n"],
                "submit_ms": round(submit_ms, 1),
            })
            last = {"next": next_queries.captured_queries, "submit": submit_queries.captured_queries}
        plans = {kind: [_explain(query["sql"], transaction, connection) for query in queries] for kind, queries in last.items()}
        cost = _cpu_per_pair(client, base, cpu_pairs) if cpu_pairs else None
        results.append({
            "holders": holders,
            "calls": rows,
            "cpu_per_pair": cost,
            "last": {
                kind: [{"ms": round(float(q["time"]) * 1000, 2), "sql": q["sql"], "plan": plan}
                       for q, plan in zip(queries, plans[kind])]
                for kind, queries in last.items()
            },
        })
    with connection.cursor() as cursor:
        for sql, params in reset_statements(state):
            cursor.execute(sql, params)
    return {"items": found["items"], "predone": predone_count(state), "results": results}


def _cpu_per_pair(client, base: str, pairs: int) -> dict:
    """CPU spent per next+submit pair, in-process (no HTTP server, no other labelers): this
    process (Django, DRF, psycopg) and its PostgreSQL backend, from /proc. Unlike throughput on
    a shared machine, this barely depends on what else runs on it."""
    from django.db import close_old_connections, connection

    connection.ensure_connection()
    backend = connection.connection.info.backend_pid

    def backend_ticks() -> int:
        with open(f"/proc/{backend}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])

    hz = os.sysconf("SC_CLK_TCK")
    py0, pg0, wall0, reaped0 = time.process_time(), backend_ticks(), time.perf_counter(), postmaster_reaped_ticks()
    for _ in range(pairs):
        close_old_connections()
        reference_id = client.post(f"{base}/next/").json()["reference_id"]
        close_old_connections()
        body = {"reference_id": reference_id, "annotations": [{"taxonomy_name": TAXONOMY, "label": "shirt"}]}
        assert client.post(f"{base}/submit/", data=json.dumps(body), content_type="application/json").status_code == 200
    if backend != connection.connection.info.backend_pid:
        return {"error": "the connection was replaced during the measurement"}
    py, pg, wall = time.process_time() - py0, (backend_ticks() - pg0) / hz, time.perf_counter() - wall0
    reaped = (postmaster_reaped_ticks() - reaped0) / hz
    return {
        # parallel query workers (and any other database's exited backends: an upper bound)
        "postgres_exited_processes_ms": round(reaped / pairs * 1000, 2),
        "pairs": pairs,
        "python_ms": round(py / pairs * 1000, 2),
        "postgres_ms": round(pg / pairs * 1000, 2),
        "wall_ms": round(wall / pairs * 1000, 2),
    }


class _Rollback(Exception):
    pass


def _explain(sql: str, transaction, connection) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a captured query, its writes rolled back. An INSERT that ran
    already would only hit the unique constraint again, so it gets the plan without running."""
    verb = sql.lstrip().split(None, 1)[0].upper()
    if verb not in ("SELECT", "UPDATE", "INSERT", "DELETE"):
        return ""
    plan = ""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(("EXPLAIN " if verb == "INSERT" else "EXPLAIN (ANALYZE, BUFFERS) ") + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            raise _Rollback
    except _Rollback:
        pass
    return plan


class _round_trips:
    """Counts the round trips to PostgreSQL on Django's connection while active (libpq trace)."""

    def __enter__(self):
        from django.db import connection

        from psycopg import pq

        connection.ensure_connection()
        self.pgconn = connection.connection.pgconn
        self.file = tempfile.NamedTemporaryFile("w+", prefix="pqtrace-")
        self.pgconn.trace(self.file.fileno())
        self.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        self.found = {"n": 0}
        return self.found

    def __exit__(self, *exc):
        self.pgconn.untrace()
        self.file.seek(0)
        self.found["n"] = sum(1 for line in self.file if line.startswith("B") and "\tReadyForQuery" in line)
        self.file.close()
        return False


def cmd_sqlcount(args) -> None:
    found = in_django(args, "sqlcount", args.holders, str(args.calls), str(args.cpu_pairs))
    found["label"] = args.label
    found["code"] = code_fingerprint(args.code)
    out = args.state / f"sqlcount_{found['items']}_{found['code']['commit'].split()[0]}_predone{found['predone']}.json"
    out.write_text(json.dumps(found, indent=1))
    for result in found["results"]:
        steady = result["calls"][-1]
        print(json.dumps({"items": found["items"], "predone": found["predone"], "holders": result["holders"], "steady": steady,
                          "cpu_per_pair": result["cpu_per_pair"]}))
        for kind in ("next", "submit"):
            print(f"  {kind}: " + " | ".join(f"{q['ms']} ms {q['sql'][:90]}" for q in result["last"][kind]))
    print(f"full SQL and plans: {out}")


# --- gunicorn -----------------------------------------------------------------------------------


def cmd_serve(args) -> None:
    pid_file = args.state / "gunicorn.pid"
    if _server_pid(args.state):
        raise SystemExit(f"A benchmark gunicorn is already running (pid {pid_file.read_text().strip()}): `stop` it first.")
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", args.port)) == 0:
            raise SystemExit(f"127.0.0.1:{args.port} is taken by another process: pick another --port.")
    command = [
        str(Path(sys.executable).parent / "gunicorn"), "config.wsgi:application",
        "--chdir", str(args.code), "--bind", f"127.0.0.1:{args.port}",
        "--workers", str(args.workers), "--worker-class", args.worker_class, "--threads", str(args.threads),
        "--timeout", "120", "--pid", str(pid_file), "--error-logfile", str(args.state / "gunicorn.err"),
    ]
    subprocess.Popen(command, env=django_env(args), cwd=args.code, start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import requests

    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{args.port}/api/v1/datasets/", timeout=2).status_code == 401:
                break
        except requests.RequestException:
            pass
        time.sleep(0.3)
    else:
        raise SystemExit(f"gunicorn did not answer in 30 s; see {args.state / 'gunicorn.err'}")
    config = {"workers": args.workers, "worker_class": args.worker_class, "threads": args.threads, "port": args.port,
              "pid": _server_pid(args.state), "command": " ".join(command), "code": code_fingerprint(args.code)}
    (args.state / "server.json").write_text(json.dumps(config))
    print(json.dumps(config))


def _server_pid(state: Path) -> int:
    """The pid in our pid file, if that process is still a gunicorn."""
    try:
        pid = int((state / "gunicorn.pid").read_text().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return pid if b"gunicorn" in f.read() else 0
    except (OSError, ValueError):
        return 0


def cmd_stop(args) -> None:
    pid = _server_pid(args.state)
    if not pid:
        print("no benchmark gunicorn running")
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.1)
    print(json.dumps({"stopped": pid}))


def cmd_drop(args) -> None:
    name = database_name(args.database_url)
    with pg_connect(args.database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(json.dumps({"dropped": name}))


# --- load generator -----------------------------------------------------------------------------


def pct(xs, p):
    """Linear-interpolated percentile (from Label Studio's loadgen.py)."""
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def summarize(xs):
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "p50_ms": round(pct(xs, 50) * 1000, 1),
        "p95_ms": round(pct(xs, 95) * 1000, 1),
        "p99_ms": round(pct(xs, 99) * 1000, 1),
        "mean_ms": round(statistics.fmean(xs) * 1000, 1),
        "max_ms": round(max(xs) * 1000, 1),
    }


class Shared:
    """What the labelers hold, to catch a `next` that hands out a task another labeler holds."""

    def __init__(self):
        self.lock = threading.Lock()
        self.outstanding = {}  # reference_id -> labeler holding it (next answered, submit not sent)
        self.inflight_submit = {}  # reference_id -> labeler whose submit is sent but not answered
        self.double_held = 0
        self.double_inflight = 0
        self.double_events = []
        self.handed = {}  # reference_id -> times handed out in the measured window


def parse_think(value: str) -> tuple[float, float]:
    low, _, high = value.partition("-")
    low, high = float(low), float(high or low)
    if not 0 <= low <= high <= 60_000:
        raise argparse.ArgumentTypeError("--think-ms is MS or LOW-HIGH, 0..60000")
    return low, high


def labeler(idx, token, a, dataset_id, shared, stop_at, measure_from, out, barrier):
    import requests

    session = requests.Session()
    session.headers["Authorization"] = "Token " + token
    next_url = f"{a.base}/api/v1/datasets/{dataset_id}/next/"
    submit_url = f"{a.base}/api/v1/datasets/{dataset_id}/submit/"
    rng = random.Random(a.seed * 1000 + idx)
    rec = {"next": [], "submit": [], "pair": [], "errors": {}, "error_samples": [], "no_task": 0, "pairs": 0}
    # Every submit answered 200 (warm-up included): (reference_id, label), checked against the
    # database after the run (`submitted_check`).
    rec["submitted"] = []

    def error(kind, response=None):
        rec["errors"][kind] = rec["errors"].get(kind, 0) + 1
        if response is not None and len(rec["error_samples"]) < 3:
            rec["error_samples"].append([kind, response.text[:300]])

    barrier.wait()
    n = 0
    while n < a.max_pairs and time.time() < stop_at:
        measuring = time.time() >= measure_from
        t0 = time.perf_counter()
        try:
            r = session.post(next_url, timeout=REQUEST_TIMEOUT)
        except requests.RequestException as e:
            error(f"next:{type(e).__name__}")
            time.sleep(0.05)
            continue
        t1 = time.perf_counter()
        if r.status_code == 204:
            rec["no_task"] += 1
            break
        if r.status_code != 200:
            error(f"next:{r.status_code}", r)
            time.sleep(0.05)
            continue
        ref = r.json()["reference_id"]
        with shared.lock:
            holder = shared.outstanding.get(ref)
            if holder is not None and holder != idx:
                shared.double_held += 1
                shared.double_events.append((ref, holder, idx, "held"))
            elif ref in shared.inflight_submit and shared.inflight_submit[ref] != idx:
                shared.double_inflight += 1
                shared.double_events.append((ref, shared.inflight_submit[ref], idx, "submit_in_flight"))
            shared.outstanding[ref] = idx
            if measuring:
                shared.handed[ref] = shared.handed.get(ref, 0) + 1
        if a.think_ms[1]:
            # The labeler looks at the image while holding the task, as a person does, so other
            # labelers' claims have to step over it.
            time.sleep(rng.uniform(*a.think_ms) / 1000.0)
        label = rng.choice(LABELS)
        body = {"reference_id": ref, "annotations": [{"taxonomy_name": TAXONOMY, "label": label}]}
        with shared.lock:
            if shared.outstanding.get(ref) == idx:
                del shared.outstanding[ref]
            shared.inflight_submit[ref] = idx
        t2 = time.perf_counter()
        try:
            r2 = session.post(submit_url, json=body, timeout=REQUEST_TIMEOUT)
            ok = r2.status_code == 200
            if not ok:
                error(f"submit:{r2.status_code}", r2)
            else:
                rec["submitted"].append((ref, label))
        except requests.RequestException as e:
            ok = False
            error(f"submit:{type(e).__name__}")
        t3 = time.perf_counter()
        with shared.lock:
            if shared.inflight_submit.get(ref) == idx:
                del shared.inflight_submit[ref]
        n += 1
        if measuring:
            rec["next"].append(t1 - t0)
            rec["submit"].append(t3 - t2)
            if ok:
                # next + submit time; without think time this is Label Studio's "next start to
                # submit end" less the client's bookkeeping.
                rec["pair"].append((t1 - t0) + (t3 - t2))
                rec["pairs"] += 1
    out[idx] = rec


def postmaster_reaped_ticks() -> int:
    """CPU of the postmaster's exited children (cutime + cstime): where short-lived parallel query
    workers end up, which the per-backend figures miss. It includes every database's exited
    backends, so it is an upper bound for ours."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if b"bin/postgres" not in f.read().split(b"\0")[0]:
                    continue
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            return int(rest[13]) + int(rest[14])
        except (OSError, ValueError, IndexError):
            continue
    return 0


class CpuSampler:
    """CPU over the measured window, from /proc: the whole machine, gunicorn (master + workers, all
    threads), the PostgreSQL backends connected to the bench database, and this process; what is
    left of the machine's busy time is other people's work.

    Backends come and go (DATABASE_CONN_MAX_AGE=60 replaces each connection about once a minute),
    so a thread polls their tick counts every 0.2 s and keeps each backend's last reading: a
    backend that exits loses at most its last 0.2 s."""

    def __init__(self, server_pid: int, db_name: str):
        self.server_pid, self.marker = server_pid, f" {db_name} ".encode()
        self.first, self.last = {}, {}  # pid -> ticks, for gunicorn and backend processes
        self.kind = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _read(self) -> None:
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            pid = int(d)
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
                rest = st.rsplit(")", 1)[1].split()
                ppid, ticks = int(rest[1]), int(rest[11]) + int(rest[12])
                kind = self.kind.get(pid)
                if kind is None:
                    if self.server_pid and (pid == self.server_pid or ppid == self.server_pid):
                        kind = "gunicorn"
                    elif st[st.index("(") + 1 : st.rindex(")")].startswith("postgres"):
                        with open(f"/proc/{d}/cmdline", "rb") as f:
                            kind = "postgres" if self.marker in f.read() else ""
                    else:
                        kind = ""
                    self.kind[pid] = kind
                    if kind:
                        # A process seen for the first time after the start began in the window.
                        self.first[pid] = ticks if not self.thread.is_alive() else 0
                if kind:
                    self.last[pid] = ticks
            except (OSError, ValueError, IndexError):
                continue

    def _machine(self):
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v[:8]), sum(v[:8]) - v[3] - v[4], sum(os.times()[:2])

    def _poll(self) -> None:
        while not self.stop.wait(0.2):
            self._read()

    def start(self) -> None:
        self._read()
        self.m0 = self._machine()
        self.reaped0 = postmaster_reaped_ticks()
        self.thread.start()

    def finish(self) -> dict:
        self.stop.set()
        self.thread.join()
        self._read()
        m1 = self._machine()
        reaped = postmaster_reaped_ticks() - self.reaped0
        hz, ncpu = os.sysconf("SC_CLK_TCK"), os.cpu_count()
        dt = m1[0] - self.m0[0] or 1
        used = {"gunicorn": 0, "postgres": 0}
        for pid, ticks in self.last.items():
            used[self.kind[pid]] += ticks - self.first.get(pid, 0)
        res = {
            "machine_busy_pct": round(100.0 * (m1[1] - self.m0[1]) / dt, 1),
            # in cores, averaged over the window (2.0 = both cores of this machine)
            "gunicorn_cores": round(used["gunicorn"] / dt * ncpu, 2),
            "postgres_cores": round(used["postgres"] / dt * ncpu, 2),
            "loadgen_cores": round((m1[2] - self.m0[2]) * hz / dt * ncpu, 2),
        }
        res["other_cores"] = round(
            res["machine_busy_pct"] / 100 * ncpu - res["gunicorn_cores"] - res["postgres_cores"] - res["loadgen_cores"], 2
        )
        # Not subtracted from other_cores: an upper bound that includes other databases' clients.
        res["postgres_exited_processes_cores_upper_bound"] = round(reaped / dt * ncpu, 2)
        return res


def db_check(url: str, dataset_id: int, admin_id: int) -> dict:
    """After a run: the queue's guarantees as the database sees them."""
    queries = {
        "annotations": "SELECT count(*) FROM labeling_categoryannotation WHERE dataset_id = %(d)s",
        "tasks_done": "SELECT count(*) FROM labeling_task WHERE dataset_id = %(d)s AND state = 'done'",
        "tasks_done_before_run": "SELECT count(*) FROM labeling_task WHERE dataset_id = %(d)s AND done_by_id = %(admin)s",
        "tasks_held_after_run": "SELECT count(*) FROM labeling_task WHERE dataset_id = %(d)s AND holder_id IS NOT NULL",
        # A second labeler's submit landing on a task: its annotation's annotator is not the task's done_by.
        "tasks_done_by_two_labelers": (
            "SELECT count(DISTINCT t.id) FROM labeling_task t JOIN labeling_categoryannotation a ON a.item_id = t.item_id "
            "WHERE t.dataset_id = %(d)s AND a.annotator_id IS DISTINCT FROM t.done_by_id AND t.done_by_id <> %(admin)s"
        ),
        # The unique constraint makes this 0 by construction; counted anyway.
        "items_with_2plus_annotations_in_a_taxonomy": (
            "SELECT count(*) FROM (SELECT item_id, taxonomy_id FROM labeling_categoryannotation "
            "WHERE dataset_id = %(d)s GROUP BY 1, 2 HAVING count(*) > 1) AS twice"
        ),
        # A finished annotation changed again (a second submit with another label) gets version > 1.
        "annotations_changed_after_finish": (
            "SELECT count(*) FROM labeling_categoryannotation WHERE dataset_id = %(d)s AND version > 1"
        ),
        "done_tasks_without_annotation": (
            "SELECT count(*) FROM labeling_task t WHERE t.dataset_id = %(d)s AND t.state = 'done' "
            "AND t.done_by_id <> %(admin)s AND NOT EXISTS "
            "(SELECT 1 FROM labeling_categoryannotation a WHERE a.item_id = t.item_id)"
        ),
        "open_tasks_with_annotation": (
            "SELECT count(*) FROM labeling_task t WHERE t.dataset_id = %(d)s AND t.state = 'open' AND EXISTS "
            "(SELECT 1 FROM labeling_categoryannotation a WHERE a.item_id = t.item_id)"
        ),
    }
    with pg_connect(url) as connection:
        return {name: connection.execute(sql, {"d": dataset_id, "admin": admin_id}).fetchone()[0] for name, sql in queries.items()}


def submitted_check(url: str, dataset_id: int, submitted: list[tuple[str, str]]) -> dict:
    """Every submit answered 200 must be in the database afterwards as a finished annotation with
    the label sent (the last one sent, if a reference_id was submitted more than once)."""
    expected = dict(submitted)
    found = {}
    with pg_connect(url) as connection:
        refs = list(expected)
        for start in range(0, len(refs), 10_000):
            rows = connection.execute(
                "SELECT i.reference_id, l.name FROM labeling_categoryannotation a "
                "JOIN labeling_item i ON i.id = a.item_id JOIN taxonomies_label l ON l.id = a.label_id "
                "JOIN taxonomies_taxonomy t ON t.id = a.taxonomy_id "
                "WHERE a.dataset_id = %s AND a.status = 'finished' AND t.taxonomy_name = %s AND i.reference_id = ANY(%s)",
                [dataset_id, TAXONOMY, refs[start : start + 10_000]],
            ).fetchall()
            found.update(rows)
    missing = [ref for ref in expected if ref not in found]
    wrong = [(ref, label, found[ref]) for ref, label in expected.items() if ref in found and found[ref] != label]
    return {
        "submits_ok": len(submitted),
        "reference_ids": len(expected),
        "missing": len(missing),
        "wrong_label": len(wrong),
        "samples": {"missing": missing[:5], "wrong_label": wrong[:5]},
    }


def process_memory(pid: int, *, children: bool = False) -> dict:
    """VmRSS and VmHWM (peak RSS) in kB from /proc/<pid>/status, of `pid` or of its children (the
    gunicorn workers of a master)."""
    if not pid:
        return {}
    pids = [pid]
    if children:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            return {}
    found = {}
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            found[str(p)] = {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}
        except (OSError, KeyError, ValueError):
            continue
    return found


def machine_busy_pct(seconds: float) -> float:
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v[:8]), v[3] + v[4]

    t0, i0 = read()
    time.sleep(seconds)
    t1, i1 = read()
    return round(100.0 * (1 - (i1 - i0) / max(t1 - t0, 1)), 1)


def wait_quiet(limit_s: float, busy_below: float = 20.0) -> float:
    """Other people's test suites share these 2 cores: wait up to `limit_s` for a quiet moment
    (machine under `busy_below` % busy over 2 s) before a run; the busy share seen is recorded."""
    deadline = time.time() + limit_s
    busy = machine_busy_pct(2)
    while busy >= busy_below and time.time() < deadline:
        busy = machine_busy_pct(2)
    return busy


def cmd_load(args) -> None:
    host = urlparse(args.base).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to send load to {host}: loopback only")
    state = load_state(args)
    db_name = database_name(args.database_url)
    tokens = state["labelers"]
    if args.concurrency > len(tokens):
        raise SystemExit(f"only {len(tokens)} labeler tokens: `setup --labelers {args.concurrency}`")
    server = json.loads((args.state / "server.json").read_text()) if (args.state / "server.json").exists() else {}
    server_pid = _server_pid(args.state)
    quiet = wait_quiet(args.wait_quiet)
    before = machine()
    shared = Shared()
    out = [None] * args.concurrency
    barrier = threading.Barrier(args.concurrency + 1)
    start = time.time() + 0.5
    measure_from = start + args.warmup
    stop_at = measure_from + args.duration
    threads = [
        threading.Thread(
            target=labeler,
            args=(i, tokens[i]["token"], args, state["dataset_id"], shared, stop_at, measure_from, out, barrier),
            daemon=True,
        )
        for i in range(args.concurrency)
    ]
    for t in threads:
        t.start()
    barrier.wait()
    time.sleep(max(0.0, measure_from - time.time()))
    cpu = CpuSampler(server_pid, db_name)
    cpu.start()
    for t in threads:
        t.join(timeout=max(0.0, stop_at - time.time()) + args.think_ms[1] / 1000 + 2 * REQUEST_TIMEOUT + 10)
    end = time.time()
    cpu_used = cpu.finish()
    loadavg = os.getloadavg()
    # A pair under way at the deadline completes; the rate uses the real end.
    measured_wall = max(end - measure_from, 1e-9)
    nx, sb, pr, errs, samples, no_task, pairs = [], [], [], {}, [], 0, 0
    for rec in out:
        if rec is None:
            errs["thread_not_finished"] = errs.get("thread_not_finished", 0) + 1
            continue
        nx += rec["next"]
        sb += rec["submit"]
        pr += rec["pair"]
        pairs += rec["pairs"]
        no_task += rec["no_task"]
        samples += rec["error_samples"]
        for k, v in rec["errors"].items():
            errs[k] = errs.get(k, 0) + v
    res = {
        "label": args.label,
        "date": before["date"],
        "items": state["items"],
        "tasks_done_before_run": predone_count(args.state),
        "concurrency": args.concurrency,
        "think_ms": list(args.think_ms),
        "server": {k: server.get(k) for k in ("workers", "worker_class", "threads")},
        "code_at_server_start": server.get("code"),
        "code_at_end": code_fingerprint(Path(server["code"]["dir"])) if server.get("code") else None,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "measured_wall_s": round(measured_wall, 2),
        "pairs_ok": pairs,
        "pairs_per_s": round(pairs / measured_wall, 2),
        "next": summarize(nx),
        "submit": summarize(sb),
        "pair": summarize(pr),
        "double_assign_held": shared.double_held,
        "double_assign_submit_in_flight": shared.double_inflight,
        "tasks_handed_more_than_once": sum(1 for v in shared.handed.values() if v > 1),
        "double_events_sample": shared.double_events[:10],
        "errors": errs,
        "error_samples": samples[:5],
        "no_task_204": no_task,
        "cpu": cpu_used,
        "machine_busy_pct_before": quiet,
        "loadavg_before": [round(x, 2) for x in before["loadavg"]],
        "loadavg_at_end": [round(x, 2) for x in loadavg],
        "db_check": db_check(args.database_url, state["dataset_id"], state["admin_id"]),
        "nproc": os.cpu_count(),
        "submitted_check": submitted_check(
            args.database_url, state["dataset_id"], [pair for rec in out if rec for pair in rec["submitted"]]
        ),
        "gunicorn_memory_kb": process_memory(server_pid, children=True),
    }
    js = json.dumps(res)
    print(js)
    with open(args.out or args.state / "results.jsonl", "a") as f:
        f.write(js + "\n")


# --- everything in one go, and the table --------------------------------------------------------


def cmd_all(args) -> None:
    """setup, SQL counts, serve, then per concurrency: reset + load; a think-time run; stop."""
    print(json.dumps(machine()))
    cmd_setup(args)
    args.holders, args.calls, args.cpu_pairs, args.label = "0,31", 5, 300, f"{args.items}"
    cmd_sqlcount(args)
    cmd_serve(args)
    try:
        cells = [(c, (0.0, 0.0)) for c in args.concurrency_list]
        if not args.no_think_run:
            cells.append((max(args.concurrency_list), args.think_run_ms))
        for concurrency, think in cells:
            args.done_fraction = None
            cmd_reset(args)
            args.concurrency, args.think_ms = concurrency, think
            args.label = f"{args.items}_c{concurrency}" + (f"_think{int(think[0])}-{int(think[1])}" if think[1] else "")
            cmd_load(args)
    finally:
        cmd_stop(args)


def cmd_table(args) -> None:
    path = Path(args.out or args.state / "results.jsonl")
    print("| label | items | labelers | think ms | server | pairs/s | next p50/p95/p99 ms | submit p50/p95/p99 ms | "
          "pair p50/p95/p99 ms | double (held / in flight) | DB: done by 2 / 2+ per taxonomy | errors | "
          "busy % (gunicorn / pg / loadgen / other cores) | pairs per server core-s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for line in path.read_text().splitlines():
        r = json.loads(line)
        s = r["server"]
        p = lambda k: f"{r[k].get('p50_ms')} / {r[k].get('p95_ms')} / {r[k].get('p99_ms')}"  # noqa: E731
        c = r["cpu"]
        think = "0" if not r["think_ms"][1] else f"{r['think_ms'][0]:.0f}-{r['think_ms'][1]:.0f}"
        print(
            f"| {r['label']} | {r['items']:,} | {r['concurrency']} | {think} | {s['workers']}×{s['worker_class']}"
            f"{'×' + str(s['threads']) if s['worker_class'] == 'gthread' else ''} | **{r['pairs_per_s']}** | {p('next')} | "
            f"{p('submit')} | {p('pair')} | {r['double_assign_held']} / {r['double_assign_submit_in_flight']} | "
            f"{r['db_check']['tasks_done_by_two_labelers']} / {r['db_check']['items_with_2plus_annotations_in_a_taxonomy']} | "
            f"{sum(r['errors'].values())} | {c['machine_busy_pct']} ({c['gunicorn_cores']} / {c['postgres_cores']} / "
            f"{c['loadgen_cores']} / {c['other_cores']}) | {r['pairs_per_s'] / max(c['gunicorn_cores'] + c['postgres_cores'], 0.01):.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="tokens, pid file, results (default /tmp/bench-queue)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="dropped and created by setup; bench_* on loopback only")
    parser.add_argument("--code", type=Path, default=PROJECT, help="the project to serve and run (default: this checkout; see `snapshot`)")
    parser.add_argument("--django-step", nargs="+", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="cmd")

    def add_setup(p):
        p.add_argument("--items", type=int, default=100_000)
        p.add_argument("--labelers", type=int, default=32)
        p.add_argument("--fill", choices=["sql", "service"], default="sql")

    def add_serve(p):
        p.add_argument("--port", type=int, default=DEFAULT_PORT)
        p.add_argument("--workers", type=int, default=4)
        p.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
        p.add_argument("--threads", type=int, default=1)

    def add_load(p):
        p.add_argument("--duration", type=float, default=60, help="measured seconds (hard bound)")
        p.add_argument("--warmup", type=float, default=5, help="unmeasured seconds of load first")
        p.add_argument("--max-pairs", type=int, default=20_000, help="per-labeler pair cap")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--wait-quiet", type=float, default=0, help="wait up to this many seconds for an idle machine first")
        p.add_argument("--out", default="", help="results file (default STATE/results.jsonl)")

    add_setup(sub.add_parser("setup"))
    p = sub.add_parser("sqlcount")
    p.add_argument("--holders", default="0,31")
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--cpu-pairs", type=int, default=300, help="pairs run to measure CPU per pair (0: skip)")
    p.add_argument("--label", default="")
    add_serve(sub.add_parser("serve"))
    sub.add_parser("stop")
    sub.add_parser("snapshot")
    p = sub.add_parser("reset")
    p.add_argument("--done-fraction", type=float, help="leave this share of the queue (its front) done; kept until changed")
    sub.add_parser("drop")
    p = sub.add_parser("load")
    add_load(p)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--think-ms", type=parse_think, default=(0.0, 0.0), help="MS or LOW-HIGH (uniform), between next and submit")
    p.add_argument("--label", default="")
    p = sub.add_parser("all")
    add_setup(p)
    add_serve(p)
    add_load(p)
    p.add_argument("--concurrency", dest="concurrency_list", type=lambda v: [int(x) for x in v.split(",")], default=[1, 8, 32])
    p.add_argument("--think-run-ms", type=parse_think, default=(500.0, 1500.0), help="think time of the extra run at the top concurrency")
    p.add_argument("--no-think-run", action="store_true")
    p = sub.add_parser("table")
    p.add_argument("--out", default="")
    args = parser.parse_args()
    if args.django_step:
        django_step(args.state, args.code, *args.django_step)
        return
    if not args.cmd:
        parser.error("a command is required")
    # Loopback only: the load generator refuses any other host.
    args.base = f"http://127.0.0.1:{getattr(args, 'port', None) or _port(args.state)}"
    {
        "setup": cmd_setup, "sqlcount": cmd_sqlcount, "serve": cmd_serve, "stop": cmd_stop, "reset": cmd_reset,
        "drop": cmd_drop, "load": cmd_load, "snapshot": cmd_snapshot, "all": cmd_all, "table": cmd_table,
    }[args.cmd](args)


def _port(state: Path) -> int:
    try:
        return json.loads((state / "server.json").read_text())["port"]
    except (OSError, ValueError, KeyError):
        return DEFAULT_PORT


if __name__ == "__main__":
    main()
