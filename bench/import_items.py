"""Benchmark: importing 100k items by URL, through `manage.py import_items` and through the API.

Not a test. Run from the project folder (see bench/README.md for the figures measured):

    .venv/bin/python bench/import_items.py                      # 100,000 rows, SQLite and PostgreSQL
    .venv/bin/python bench/import_items.py --rows 20000 --backends sqlite

For each backend it starts from an empty database (a new SQLite file; PostgreSQL database
`bench_import`, dropped and created here, and dropped again at the end), migrates it, then:

1. `manage.py import_items` in a subprocess, one JSONL file of N rows, into a fresh dataset;
2. the API: POST /api/v1/datasets/{id}/items/ with JSON lists of 10,000 rows (10 batches for 100k),
   token-authenticated as the dataset's admin, through Django's in-process test client (the
   whole Django stack, middleware to database, without an HTTP server), into a fresh dataset;
3. the same with batches of 1,000 rows, the batch size of the Label Studio figures.

Django runs as in production (DEBUG=false); remote image sizes are not requested (that is
asynchronous work for the Celery workers, not part of an import).
"""

import argparse
import json
import os
import platform
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
# Label Studio 1.23.2 on this machine (/work/shared/peer/label-studio/RESULTS.md, "Import"):
# POST /api/projects/{id}/import, JSON lists of 1,000 tasks, PostgreSQL, gunicorn.
LABEL_STUDIO = {"empty → 10k": 5345, "10k → 100k": 4659}
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/bench_import"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgres", help="Comma-separated: sqlite, postgres.")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="Dropped and created by the benchmark.")
    parser.add_argument("--api-batch-sizes", default="10000,1000", help="Comma-separated; empty to skip the API.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of everything, each on a new database (default 3).")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    print(machine())
    print(f"load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        rows_file = Path(folder) / "rows.jsonl"
        write_rows(rows_file, args.rows)
        print(f"{args.rows} rows in {rows_file} ({rows_file.stat().st_size / 1e6:.1f} MB)\n")
        results = []
        for run in range(1, args.repeat + 1):
            for backend in [name.strip() for name in args.backends.split(",") if name.strip()]:
                print(f"--- run {run} of {args.repeat}, {backend}")
                env = backend_env(backend, folder=Path(folder), postgres_url=args.postgres_url)
                try:
                    results += bench_backend(backend, env=env, rows_file=rows_file, rows=args.rows, batch_sizes=batch_sizes(args))
                finally:
                    if backend == "postgres":
                        postgres_database(args.postgres_url, create=False)
                    else:
                        for path in Path(folder).glob("bench.sqlite3*"):
                            path.unlink()
    print(f"load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print()
    print_table(results)


def batch_sizes(args) -> list[int]:
    return [int(size) for size in args.api_batch_sizes.split(",") if size.strip()]


def write_rows(path: Path, count: int) -> None:
    splits = ("train", "validation", "test")
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            row = {
                "reference_id": f"image_{n}",
                "image_url": f"https://images.example.com/{n}.jpg",
                "metadata": {"split": splits[n % 3], "camera": {"id": n % 7, "side": "front"}, "score": round(n / count, 6)},
            }
            out.write(json.dumps(row) + "\n")


def backend_env(backend: str, *, folder: Path, postgres_url: str) -> dict:
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-" + os.urandom(16).hex(),
        "ALLOWED_HOSTS": "testserver,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "REMOTE_IMAGE_SIZES": "false",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    if backend == "sqlite":
        env["SQLITE_PATH"] = str(folder / "bench.sqlite3")
    elif backend == "postgres":
        postgres_database(postgres_url, create=True)
        env["DATABASE_URL"] = postgres_url
    else:
        raise SystemExit(f"Unknown backend {backend!r}; use sqlite or postgres.")
    return env


def postgres_database(url: str, *, create: bool) -> None:
    """Drop the benchmark's database (and create it again when `create`), from the server's
    `postgres` maintenance database."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    if not re.fullmatch(r"\w+", name):
        raise SystemExit(f"Refusing an unusual database name: {name!r}")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if create:
            connection.execute(f"CREATE DATABASE {name}")


def bench_backend(backend: str, *, env: dict, rows_file: Path, rows: int, batch_sizes: list[int]) -> list[dict]:
    manage = [sys.executable, str(PROJECT / "manage.py")]
    started = time.perf_counter()
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=PROJECT)
    print(f"[{backend}] migrated in {time.perf_counter() - started:.1f} s")
    results = []

    dataset = self_worker(env, "create-dataset", f"bench cli {backend}")["name"]
    wait_for_quiet()
    cpu_before, started = children_cpu_seconds(), time.perf_counter()
    done = subprocess.run(
        [*manage, "import_items", dataset, str(rows_file), "-v", "0"], env=env, check=True, cwd=PROJECT, capture_output=True, text=True
    )
    wall, cpu = time.perf_counter() - started, children_cpu_seconds() - cpu_before
    summary = done.stdout.strip()
    own = float(re.search(r" in ([\d.]+) s ", summary)[1])
    # CPU time is what other work on the machine changes least (on SQLite, the database work is
    # in it too; PostgreSQL's own work is not).
    print(f"[{backend}] {summary} (process: wall {wall:.2f} s, CPU {cpu:.2f} s)")
    results.append({"backend": backend, "path": "manage.py import_items", "rows": rows, "seconds": own, "wall": wall, "phases": {}})

    for size in batch_sizes:
        wait_for_quiet()
        found = self_worker(env, "api", str(rows_file), str(size))
        print(
            f"[{backend}] API, {found['batches']} POSTs of {size} rows: {found['seconds']:.2f} s "
            f"(a batch: median {statistics.median(found['per_batch']):.3f} s, first {found['per_batch'][0]:.3f} s, "
            f"last {found['per_batch'][-1]:.3f} s)"
        )
        results.append({"backend": backend, "path": f"API, {size:,}-row batches", **found})
    return results


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_idle_fraction(seconds: float) -> float:
    """The share of all cores' time spent idle over the next `seconds` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    idle_before, total_before = sample()
    time.sleep(seconds)
    idle_after, total_after = sample()
    return (idle_after - idle_before) / max(1, total_after - total_before)


def wait_for_quiet(*, idle: float = 0.9, longest: float = 300) -> None:
    """Other people's work on a shared machine slows a run down: start a measured step only after
    the cores have been at least `idle` idle for 3 s, or after `longest` seconds of waiting."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        if cpu_idle_fraction(3) >= idle:
            return
    print(f"  (the machine stayed busy for {longest:.0f} s; measuring anyway)")


def self_worker(env: dict, *args: str) -> dict:
    """Run one step in a new process: Django reads its settings (and database) from the environment."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", *args], env=env, check=True, cwd=PROJECT, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker(step: str, *args: str) -> None:
    sys.path.insert(0, str(PROJECT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    if step == "create-dataset":
        from labeling.services.datasets import dataset_create

        dataset = dataset_create(name=args[0], kind="images")
        print(json.dumps({"id": dataset.id, "name": dataset.name}))
    elif step == "api":
        print(json.dumps(api_import(Path(args[0]), batch_size=int(args[1]))))
    else:
        raise SystemExit(f"Unknown step {step!r}")


def api_import(rows_file: Path, *, batch_size: int) -> dict:
    """POST the rows in batches as a script would (token of a dataset admin); time each request."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from labeling.models import Item
    from labeling.services.datasets import dataset_create

    user = get_user_model().objects.create_user(username=f"bench-{batch_size}")
    dataset = dataset_create(name=f"bench api {batch_size}", kind="images", created_by=user)
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    with rows_file.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    bodies = [json.dumps(rows[start : start + batch_size]) for start in range(0, len(rows), batch_size)]
    url = f"/api/v1/datasets/{dataset.id}/items/"
    per_batch, stored = [], 0
    for body in bodies:
        started = time.perf_counter()
        response = client.post(url, data=body, content_type="application/json")
        per_batch.append(time.perf_counter() - started)
        if response.status_code != 201:
            raise SystemExit(f"POST answered {response.status_code}: {response.content[:500]!r}")
        stored += response.json()["created"]
    if stored != len(rows) or stored != Item.objects.filter(dataset=dataset).count():
        raise SystemExit(f"{len(rows)} rows sent, {stored} reported created, {Item.objects.filter(dataset=dataset).count()} stored")
    first_10k = max(1, 10_000 // batch_size)
    phases = {
        "empty → 10k": (min(stored, 10_000), sum(per_batch[:first_10k])),
        "10k → 100k": (max(0, stored - 10_000), sum(per_batch[first_10k:])),
    }
    return {"rows": stored, "batches": len(bodies), "seconds": sum(per_batch), "per_batch": per_batch, "phases": phases}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    return (
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )


def print_table(results: list[dict]) -> None:
    """Each (backend, path) with its median and best run: on a shared machine the best run is the
    one least slowed by other work, the median the one to expect."""
    low, high = min(LABEL_STUDIO.values()), max(LABEL_STUDIO.values())
    print(f"| backend | path | rows | runs | median s | rows/s median (best) | × Label Studio ({low:,}–{high:,} tasks/s), median |")
    print("|---|---|---|---|---|---|---|")
    groups: dict[tuple[str, str], list[dict]] = {}
    for result in results:
        groups.setdefault((result["backend"], result["path"]), []).append(result)
    for (backend, path), runs in groups.items():
        rows = runs[0]["rows"]
        seconds = statistics.median(run["seconds"] for run in runs)
        best = min(run["seconds"] for run in runs)
        rate = rows / seconds
        print(
            f"| {backend} | {path} | {rows:,} | {len(runs)} | {seconds:.2f} | {rate:,.0f} ({rows / best:,.0f}) "
            f"| {rate / high:.2f}–{rate / low:.2f} |"
        )
        for phase in runs[0]["phases"]:
            phase_rows = runs[0]["phases"][phase][0]
            phase_seconds = statistics.median(run["phases"][phase][1] for run in runs)
            if phase_rows and phase_seconds:
                phase_rate = phase_rows / phase_seconds
                phase_best = phase_rows / min(run["phases"][phase][1] for run in runs)
                print(
                    f"| {backend} | ↳ {phase} | {phase_rows:,} | {len(runs)} | {phase_seconds:.2f} | {phase_rate:,.0f} ({phase_best:,.0f}) "
                    f"| {phase_rate / LABEL_STUDIO[phase]:.2f} (LS {LABEL_STUDIO[phase]:,}) |"
                )


if __name__ == "__main__":
    main()
