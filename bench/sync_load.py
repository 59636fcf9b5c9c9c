"""Benchmark: syncing 100,000 finished annotations to a fake Nucleus with 50 ms of latency per request.

Not a test. Run from the project folder with the venv's python (figures: bench/README.md):

    .venv/bin/python bench/sync_load.py all                            # setup, then every run below, 100k
    .venv/bin/python bench/sync_load.py drop                           # drop the bench database

or step by step (each step reads what `setup` left in --state, /tmp/bench-sync):

    setup --annotations N   drop + create database `bench_sync` (PostgreSQL, 127.0.0.1), migrate, and two
                            images datasets of N items each, written by INSERT ... SELECT generate_series:
                            `single` (taxonomy clothing_type, 4 labels, one finished annotation per item) and
                            `multi` (multi-label taxonomy attributes, 4 classes, one finished annotation per
                            item choosing a subset: 4 True/False payloads each); VACUUM ANALYZE
    sync --variant V --how inprocess|worker [--processes P]
                            start the fake Nucleus as its own process (python -m tests.fake_nucleus
                            --latency 0.05), give it a new dataset holding the N items, put every annotation
                            of variant V back to pending and its taxonomy to "never sent", then sync:
                              inprocess  `dataset_sync` in one Django process (what `manage.py sync_nucleus` runs);
                              worker     `celery -A config worker --concurrency P` on Redis 127.0.0.1:6379/11,
                                         one queue of its own, P `labeling.sync_dataset` messages published
                                         (as the sweep and a submit would), timed until nothing is pending;
                            then check that the fake holds exactly the expected (reference_id, taxonomy_name)
                            -> label, count its requests by route, and record the peak RSS (VmHWM) of the
                            process that synced
    baseline --variant V --sample S
                            one request per annotation: the SDK's own `dataset.annotate([one], update=True)`
                            for S annotations through the same fake at the same latency; the rate is
                            extrapolated to N (said so in the result)
    table                   the results file as markdown rows

Every result is appended to --state/results.jsonl as one JSON line with the machine, the commit and
whether the sync's files differed from it.
"""

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

# The queue benchmark's helpers: the machine's description, the bench_* database guard, the settings.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from queue_load import database_name, machine, pg_connect  # noqa: E402
from queue_load import django_env as queue_django_env  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_sync"
DEFAULT_STATE = Path("/tmp/bench-sync")
DEFAULT_BROKER = "redis://127.0.0.1:6379/11"  # a spare number: the tests use 13-15
LATENCY = 0.05
API_KEY = "bench-key"
SINGLE_LABELS = ["shirt", "pants", "dress", "shoes"]
MULTI_LABELS = ["striped", "logo", "torn", "faded"]
VARIANTS = {"single": ("bench sync single", "clothing_type"), "multi": ("bench sync multi", "attributes")}
# The files a sync runs through: hashed into every result, because the working tree changes while others work in it.
HOT_PATH = ["labeling/services/sync.py", "labeling/nucleus.py", "labeling/tasks.py", "labeling/models.py", "config/settings.py"]


# --- environment --------------------------------------------------------------------------------


def code_fingerprint() -> dict:
    git = lambda *a: subprocess.run(["git", "-C", str(PROJECT), *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    return {"commit": git("rev-parse", "--short", "HEAD"), "hot_path_changed_since_commit": git("status", "--porcelain", "--", *HOT_PATH).splitlines()}


def django_env(args, **extra: str) -> dict:
    """The queue benchmark's settings (production mode: with DEBUG off Django keeps no query log),
    with no broker from the shell: eager unless `extra` names one."""
    ignored = ("CELERY_BROKER_URL", "REDIS_URL", "SQLITE_PATH")
    return {**{name: value for name, value in queue_django_env(args).items() if name not in ignored}, **extra}


def in_django(args, step: str, *step_args: str, env: dict | None = None) -> dict:
    """Run one step in a new process: Django reads its settings (and database) from the environment."""
    done = subprocess.run(
        [sys.executable, __file__, "--state", str(args.state), "--django-step", step, *step_args],
        env=env or django_env(args), cwd=PROJECT, capture_output=True, text=True,
    )
    if done.stderr.strip():
        print(done.stderr.strip()[-3000:], file=sys.stderr)
    if done.returncode:
        raise SystemExit(f"step {step} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_state(args) -> dict:
    path = args.state / "state.json"
    if not path.exists():
        raise SystemExit(f"No {path}: run `setup` first.")
    return json.loads(path.read_text())


def record(args, result: dict) -> None:
    result = {**result, "machine": machine(), "code": code_fingerprint()}
    with open(args.state / "results.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result))


# --- setup --------------------------------------------------------------------------------------


def cmd_setup(args) -> None:
    name = database_name(args.database_url)
    args.state.mkdir(parents=True, exist_ok=True)
    with pg_connect(args.database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], env=django_env(args), check=True, cwd=PROJECT)
    found = {"migrate_s": round(time.perf_counter() - started, 2), "annotations": args.annotations}
    found |= in_django(args, "fill", str(args.annotations))
    with pg_connect(args.database_url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    (args.state / "state.json").write_text(json.dumps(found, indent=1))
    print(json.dumps(found))


def fill(n: int) -> dict:
    """Both variants' datasets: N items by URL, a taxonomy, and one finished annotation per item,
    written by the database itself (N rows through the services would measure the services)."""
    from django.db import connection, transaction

    from labeling.models import AnnotationLabel, CategoryAnnotation, Item
    from labeling.services.datasets import dataset_create
    from taxonomies.services import taxonomy_create

    item, annotation, chosen = Item._meta.db_table, CategoryAnnotation._meta.db_table, AnnotationLabel._meta.db_table
    found = {}
    started = time.perf_counter()
    for variant, (dataset_name, taxonomy_name) in VARIANTS.items():
        dataset = dataset_create(name=dataset_name, kind="images")
        multi = variant == "multi"
        taxonomy = taxonomy_create(
            dataset=dataset, taxonomy_name=taxonomy_name, labels=MULTI_LABELS if multi else SINGLE_LABELS, multi_label=multi
        )
        label_ids = list(taxonomy.labels.order_by("position").values_list("id", flat=True))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {item} (dataset_id, reference_id, image, image_url, metadata, created_at) "
                "SELECT %s, 'image_' || n, '', 'https://images.example.com/' || n || '.jpg', "
                "jsonb_build_object('split', (ARRAY['train', 'validation', 'test'])[n %% 3 + 1]), now() "
                "FROM generate_series(0, %s - 1) AS n ORDER BY n",
                [dataset.id, n],
            )
            # Single-label: labels in turn; multi-label: item n chooses the classes of n's low 4 bits.
            cursor.execute(
                f"INSERT INTO {annotation} (dataset_id, item_id, taxonomy_id, label_id, metadata, status, created_at, "
                "updated_at, finished_at, version, synced_version, sync_state, sync_attempts, sync_error) "
                "SELECT i.dataset_id, i.id, %s, CASE WHEN %s THEN NULL ELSE (%s::int[])[i.id %% 4 + 1] END, "
                "jsonb_build_object('annotator', 'bench'), 'finished', now(), now(), now(), 1, 0, 'pending', 0, '' "
                f"FROM {item} i WHERE i.dataset_id = %s ORDER BY i.id",
                [taxonomy.id, multi, label_ids, dataset.id],
            )
            if multi:
                cursor.execute(
                    f"INSERT INTO {chosen} (annotation_id, label_id, taxonomy_id) "
                    "SELECT a.id, l.id, a.taxonomy_id FROM "
                    f"{annotation} a JOIN {item} i ON i.id = a.item_id "
                    "CROSS JOIN unnest(%s::int[]) WITH ORDINALITY AS l(id, bit) "
                    "WHERE a.dataset_id = %s AND (substring(i.reference_id from 7)::int >> (l.bit::int - 1)) & 1 = 1",
                    [label_ids, dataset.id],
                )
        found[variant] = {"dataset_id": dataset.id, "taxonomy_id": taxonomy.id}
    found["fill_s"] = round(time.perf_counter() - started, 2)
    return found


# --- the fake Nucleus ---------------------------------------------------------------------------


class FakeProcess:
    """`python -m tests.fake_nucleus --latency 0.05` in its own process, driven over its control API."""

    def __init__(self, latency: float):
        sys.path.insert(0, str(PROJECT))
        from tests.fake_nucleus import FakeNucleusRemote

        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_nucleus", "--port", "0", "--api-key", API_KEY, "--latency", str(latency)],
            cwd=PROJECT, stdout=subprocess.PIPE, text=True,
        )
        self.endpoint = self.process.stdout.readline().strip()
        self.remote = FakeNucleusRemote(self.endpoint)

    def routes(self) -> dict[str, int]:
        """Requests received, by route. Read with a long timeout: the fake answers with every request's
        body (400,000 payloads in the multi-label run), which FakeNucleusRemote's 10 s do not allow."""
        import urllib.request

        with urllib.request.urlopen(f"{self.remote.base_url}/_fake/requests", timeout=600) as response:
            requests = json.loads(response.read())
        counts: dict[str, int] = {}
        for request in requests:
            counts[request["route"]] = counts.get(request["route"], 0) + 1
        return counts

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def prepare(args, fake: FakeProcess, variant: str) -> tuple[dict, str]:
    """A new dataset on the fake with the variant's items; every annotation of the variant pending
    again and its taxonomy never sent (the dataset linked to the new one)."""
    state = load_state(args)[variant]
    nucleus_dataset_id = fake.remote.create_dataset(f"bench {variant} {uuid.uuid4().hex[:6]}")
    with pg_connect(args.database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT reference_id, image_url FROM labeling_item WHERE dataset_id = %s ORDER BY id", [state["dataset_id"]]
        ).fetchall()
        for start in range(0, len(rows), 20_000):
            items = [{"reference_id": ref, "image_url": url, "metadata": {}} for ref, url in rows[start : start + 20_000]]
            assert fake.remote.add_items(nucleus_dataset_id, items) == []
        connection.execute("UPDATE labeling_dataset SET nucleus_dataset_id = '' WHERE nucleus_dataset_id <> '' AND id <> %s", [state["dataset_id"]])
        connection.execute("UPDATE labeling_dataset SET nucleus_dataset_id = %s WHERE id = %s", [nucleus_dataset_id, state["dataset_id"]])
        connection.execute("UPDATE taxonomies_taxonomy SET nucleus_labels = NULL, nucleus_taxonomy_name = '' WHERE dataset_id = %s", [state["dataset_id"]])
        connection.execute(
            "UPDATE labeling_categoryannotation SET sync_state = 'pending', synced_version = 0, sync_attempts = 0, "
            "sync_next_attempt_at = NULL, sync_error = '', sync_claim = NULL, sync_claimed_until = NULL WHERE dataset_id = %s",
            [state["dataset_id"]],
        )
        connection.execute("VACUUM ANALYZE labeling_categoryannotation")
    return state, nucleus_dataset_id


def expected_labels(args, variant: str) -> dict[tuple[str, str], str]:
    """What Nucleus must hold: (reference_id, taxonomy_name) -> label, read from the database."""
    state = load_state(args)[variant]
    with pg_connect(args.database_url) as connection:
        if variant == "single":
            rows = connection.execute(
                "SELECT i.reference_id, t.taxonomy_name, l.name FROM labeling_categoryannotation a "
                "JOIN labeling_item i ON i.id = a.item_id JOIN taxonomies_taxonomy t ON t.id = a.taxonomy_id "
                "JOIN taxonomies_label l ON l.id = a.label_id WHERE a.dataset_id = %s",
                [state["dataset_id"]],
            ).fetchall()
            return {(ref, taxonomy): label for ref, taxonomy, label in rows}
        rows = connection.execute(
            "SELECT i.reference_id, t.taxonomy_name || ':' || l.name, "
            "CASE WHEN EXISTS (SELECT 1 FROM labeling_annotationlabel c WHERE c.annotation_id = a.id AND c.label_id = l.id) "
            "THEN 'True' ELSE 'False' END FROM labeling_categoryannotation a "
            "JOIN labeling_item i ON i.id = a.item_id JOIN taxonomies_taxonomy t ON t.id = a.taxonomy_id "
            "JOIN taxonomies_label l ON l.taxonomy_id = t.id WHERE a.dataset_id = %s",
            [state["dataset_id"]],
        ).fetchall()
        return {(ref, taxonomy): label for ref, taxonomy, label in rows}


def pending_count(args, dataset_id: int) -> int:
    with pg_connect(args.database_url) as connection:
        return connection.execute(
            "SELECT count(*) FROM labeling_categoryannotation WHERE dataset_id = %s AND sync_state <> 'synced'", [dataset_id]
        ).fetchone()[0]


def check(args, fake: FakeProcess, variant: str, nucleus_dataset_id: str) -> dict:
    """Does the fake hold exactly the expected labels? And which requests did it get?"""
    expected = expected_labels(args, variant)
    held = fake.remote.labels(nucleus_dataset_id)
    routes = fake.routes()
    for route in ("create", "items"):  # the benchmark's own seeding goes through the control API, not counted
        routes.pop(route, None)
    return {
        "exact": held == expected,
        "expected_pairs": len(expected),
        "held_pairs": len(held),
        "missing": len(expected.keys() - held.keys()),
        "wrong_label": sum(1 for key in expected.keys() & held.keys() if held[key] != expected[key]),
        "unexpected": len(held.keys() - expected.keys()),
        "requests": sum(routes.values()),
        "requests_by_route": routes,
    }


# --- the runs -----------------------------------------------------------------------------------


def cmd_sync(args) -> None:
    fake = FakeProcess(args.latency)
    try:
        state, nucleus_dataset_id = prepare(args, fake, args.variant)
        env = django_env(args, NUCLEUS_API_KEY=API_KEY, NUCLEUS_ENDPOINT=fake.endpoint)
        if args.how == "inprocess":
            run = in_django(args, "dataset_sync", str(state["dataset_id"]), env=env)
        else:
            run = run_worker(args, env, state["dataset_id"])
        left = pending_count(args, state["dataset_id"])
        checked = check(args, fake, args.variant, nucleus_dataset_id)
    finally:
        fake.stop()
    annotations = load_state(args)["annotations"]
    record(args, {
        "step": "sync", "how": args.how, "processes": args.processes if args.how == "worker" else 1, "variant": args.variant,
        "annotations": annotations, "latency_s": args.latency, "wall_s": round(run["wall_s"], 2),
        "annotations_per_s": round(annotations / run["wall_s"], 1), "not_synced_after": left, **checked,
        **{key: value for key, value in run.items() if key != "wall_s"},
    })


def dataset_sync_step(dataset_id: int) -> dict:
    import resource

    from labeling.models import Dataset
    from labeling.services.sync import dataset_sync

    started = time.perf_counter()
    report = dataset_sync(dataset=Dataset.objects.get(pk=dataset_id))
    wall = time.perf_counter() - started
    return {
        "wall_s": wall, "batches": report.batches, "synced": report.synced, "failed": report.failed, "payloads": report.payloads,
        "errors": report.errors[:3], "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def run_worker(args, env: dict, dataset_id: int) -> dict:
    """`celery -A config worker` (prefork, P processes) on a queue of its own; P messages published
    at once; timed until no annotation is left unsynced. The peak RSS of each pool process is read
    before the worker stops."""
    import redis

    queue = f"bench-sync-{uuid.uuid4().hex[:8]}"
    env = {**env, "CELERY_BROKER_URL": args.broker}
    log = args.state / f"worker-{queue}.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork", f"--concurrency={args.processes}", "-Q", queue,
         "-n", f"{queue}@%h", "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
        cwd=PROJECT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text(errors="replace"):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"The worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        children = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()]
        # The publisher prints the clock right before publishing: its own start-up is not timed.
        publish = "import time\nfrom labeling.tasks import sync_dataset\nprint(time.time(), flush=True)\n" + "".join(
            f"sync_dataset.apply_async(args=[{dataset_id}], queue={queue!r})\n" for _ in range(args.processes)
        )
        done = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()\n" + publish], cwd=PROJECT, env=env, check=True, capture_output=True, text=True
        )
        started = float(done.stdout.split()[0])
        while pending_count(args, dataset_id):
            if time.time() - started > args.timeout:
                raise SystemExit(f"Not synced after {args.timeout} s; see {log}")
            time.sleep(0.1)
        wall = time.time() - started
        rss = {pid: peak_rss_mib(pid) for pid in children}
        tasks = log.read_text(errors="replace").count("succeeded in")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        client = redis.Redis.from_url(args.broker)
        for key in client.scan_iter(f"*{queue}*"):
            client.delete(key)
    return {"wall_s": wall, "pool_process_max_rss_mib": sorted(rss.values()), "tasks_succeeded": tasks}


def cmd_baseline(args) -> None:
    fake = FakeProcess(args.latency)
    try:
        state, nucleus_dataset_id = prepare(args, fake, args.variant)
        env = django_env(args, NUCLEUS_API_KEY=API_KEY, NUCLEUS_ENDPOINT=fake.endpoint)
        run = in_django(args, "one_per_request", str(state["dataset_id"]), str(args.sample), env=env)
        routes = fake.routes()
    finally:
        fake.stop()
    annotations = load_state(args)["annotations"]
    rate = args.sample / run["wall_s"]
    record(args, {
        "step": "baseline", "variant": args.variant, "sample": args.sample, "latency_s": args.latency,
        "sample_wall_s": round(run["wall_s"], 2), "annotations_per_s": round(rate, 1),
        "annotate_requests": routes.get("annotate", 0), "payloads": run["payloads"],
        "extrapolated_wall_s_for": annotations, "extrapolated_wall_s": round(annotations / rate, 0),
        "note": f"measured on {args.sample} annotations, extrapolated linearly to {annotations}",
    })


def one_per_request_step(dataset_id: int, sample: int) -> dict:
    """The baseline: the SDK as a script would use it, one `annotate([one], update=True)` per
    annotation (a multi-label one is its True/False payloads), on the SDK's own connection."""
    import functools

    import nucleus as sdk
    import tqdm
    from django.conf import settings

    from labeling import nucleus
    from labeling.models import CategoryAnnotation, Dataset

    dataset = Dataset.objects.get(pk=dataset_id)
    client = sdk.NucleusClient(api_key=settings.NUCLEUS_API_KEY, endpoint=settings.NUCLEUS_ENDPOINT)
    client.tqdm_bar = functools.partial(tqdm.tqdm, disable=True)
    remote = client.get_dataset(dataset.nucleus_dataset_id)
    annotations = list(
        CategoryAnnotation.objects.filter(dataset=dataset).order_by("id")
        .select_related("item", "scene", "taxonomy", "label").prefetch_related("labels", "taxonomy__labels")[:sample]
    )
    taxonomy = annotations[0].taxonomy
    names = taxonomy.label_names()
    started = time.perf_counter()
    for name, labels in ([(nucleus.binary_taxonomy_name(taxonomy.taxonomy_name, n), nucleus.BINARY_LABELS) for n in names]
                         if taxonomy.multi_label else [(taxonomy.taxonomy_name, names)]):
        remote.add_taxonomy(name, "category", labels, update=True)
    payloads = 0
    for annotation in annotations:
        built = [sdk.CategoryAnnotation.from_json(payload) for payload in nucleus.annotation_payloads(annotation)]
        answer = remote.annotate(built, update=True)
        assert answer.get("annotations_processed") == len(built), answer
        payloads += len(built)
    return {"wall_s": time.perf_counter() - started, "payloads": payloads}


def cmd_all(args) -> None:
    cmd_setup(args)
    for variant in ("single", "multi"):
        args.variant = variant
        args.how, args.processes = "inprocess", 1
        cmd_sync(args)
        args.how = "worker"
        for processes in (1, 2):
            args.processes = processes
            cmd_sync(args)
        cmd_baseline(args)


def cmd_drop(args) -> None:
    name = database_name(args.database_url)
    with pg_connect(args.database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(f"dropped {name}")


def cmd_table(args) -> None:
    print("| variant | path | processes | annotations/s | wall s | requests | exact | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for line in (args.state / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["step"] == "sync":
            rss = r.get("max_rss_mib") or max(r.get("pool_process_max_rss_mib") or [0])
            print(f"| {r['variant']} | {r['how']} | {r['processes']} | {r['annotations_per_s']} | {r['wall_s']} | {r['requests']} | {r['exact']} | {rss} |")
        else:
            print(f"| {r['variant']} | one request per annotation ({r['sample']} sampled) | 1 | {r['annotations_per_s']} | "
                  f"{r['extrapolated_wall_s']} (extrapolated) | {r['annotate_requests']} for {r['sample']} | | |")


def django_step(step: str, *step_args: str) -> None:
    sys.path.insert(0, str(PROJECT))
    import django

    django.setup()
    if step == "fill":
        print(json.dumps(fill(int(step_args[0]))))
    elif step == "dataset_sync":
        print(json.dumps(dataset_sync_step(int(step_args[0]))))
    elif step == "one_per_request":
        print(json.dumps(one_per_request_step(int(step_args[0]), int(step_args[1]))))
    else:
        raise SystemExit(f"Unknown step {step!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state and results (default /tmp/bench-sync)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="dropped and created by setup; bench_* on loopback only")
    parser.add_argument("--broker", default=DEFAULT_BROKER, help="Redis for the worker runs (a spare database number)")
    parser.add_argument("--latency", type=float, default=LATENCY, help="seconds the fake adds to every request")
    parser.add_argument("--django-step", nargs="+", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="cmd")
    p = sub.add_parser("setup")
    p.add_argument("--annotations", type=int, default=100_000)
    p = sub.add_parser("all")
    p.add_argument("--annotations", type=int, default=100_000)
    p.add_argument("--sample", type=int, default=500)
    p.add_argument("--timeout", type=float, default=1800)
    p = sub.add_parser("sync")
    p.add_argument("--variant", choices=list(VARIANTS), default="single")
    p.add_argument("--how", choices=["inprocess", "worker"], default="inprocess")
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--timeout", type=float, default=1800, help="give up on a worker run after this many seconds")
    p = sub.add_parser("baseline")
    p.add_argument("--variant", choices=list(VARIANTS), default="single")
    p.add_argument("--sample", type=int, default=500)
    sub.add_parser("table")
    sub.add_parser("drop")
    args = parser.parse_args()
    if args.django_step:
        django_step(*args.django_step)
        return
    args.state.mkdir(parents=True, exist_ok=True)
    commands = {"setup": cmd_setup, "all": cmd_all, "sync": cmd_sync, "baseline": cmd_baseline, "table": cmd_table, "drop": cmd_drop}
    if args.cmd not in commands:
        parser.print_help()
        return
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
