"""Benchmark: what an image upload costs the web worker, and the verification child at its limits.

Not a test. Run from the project folder (figures and the command: bench/README.md):

    .venv/bin/python bench/image_upload.py                     # eager mode (no broker), SQLite in a temp folder
    .venv/bin/python bench/image_upload.py --broker redis://127.0.0.1:6379/3   # the web worker only publishes

(--broker: a Redis database nobody else uses; the messages stay in its `celery` list, for a
database that is gone when the run ends: `redis-cli -n 3 del celery` afterwards.)

1. Web worker: gunicorn with one sync worker serves POST /api/v1/datasets/{id}/items/ (multipart
   `images`) at the caps: (a) a request at MAX_IMAGE_PIXELS_PER_REQUEST made of 9,990 x 9,990 flat
   PNGs (each ~310 KB, under the 100 MP cap, ~415 MB and ~1 s of CPU to decode); (b) one image of
   ~48 MB, just under MAX_IMAGE_UPLOAD_BYTES. Around each request, the worker's own CPU time
   (/proc/<pid>/stat utime+stime), its children's (cutime+cstime: the verification children in
   eager mode), its RSS before and its peak RSS during the request (VmHWM, reset through
   /proc/<pid>/clear_refs before each request).
2. Verification child: `labeling.images.image_verify_in_child` on the bomb PNG at the default
   limits, with IMAGE_VERIFY_MEMORY_MB=256 (the memory limit hits), and with
   IMAGE_VERIFY_CPU_SECONDS=1 (the CPU-time limit hits; also on a 16,000 x 16,000 flat PNG, whose
   decode needs ~2.5 s): the verdict, the wall time until the child ended, its CPU time.
"""

import argparse
import json
import os
import resource
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.labeling.image_files import flat_png  # noqa: E402  (the same bomb as the tests)

TICK = os.sysconf("SC_CLK_TCK")


def noise_png(width: int, height: int) -> bytes:
    """Random pixels, stored (zlib level 0): a PNG of about width * height * 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + os.urandom(3 * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b"")


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    parts = []
    for name, content in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{name}"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode() + content + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def proc_cpu(pid: int) -> tuple[float, float]:
    """(own, children's) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime) / TICK, (cutime + cstime) / TICK


def proc_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise KeyError(name)


def django_env(folder: Path, broker: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings", SQLITE_PATH=str(folder / "bench.sqlite3"), MEDIA_ROOT=str(folder / "media"),
        DEBUG="true", LOG_LEVEL="WARNING",
    )
    if broker:
        env["CELERY_BROKER_URL"] = broker
    return env


SETUP = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from labeling.services.datasets import dataset_create
user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
dataset = dataset_create(name="bench images", kind="images", created_by=user)
print(dataset.id, Token.objects.create(user=user).key)
"""

STATES = """
from labeling.models import Item
print(sorted(Item.objects.values_list("image_check", flat=True)))
"""


def manage(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT, env=env, check=True, capture_output=True, text=True).stdout


class Server:
    """gunicorn, one sync worker, the project's own config file."""

    def __init__(self, env: dict):
        self.port = free_port()
        env = {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": "1", "GUNICORN_TIMEOUT": "120"}
        self.master = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi:application"],
            cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self.master.pid}/task/{self.master.pid}/children").read_text().split()
            if children and self._answers():
                self.worker = int(children[0])
                return
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.master.terminate()
        self.master.wait(timeout=30)


def upload(server: Server, dataset_id: int, token: str, files: list[tuple[str, bytes]]) -> dict:
    body, content_type = multipart(files)
    urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health/", timeout=10).read()  # warm the worker first
    Path(f"/proc/{server.worker}/clear_refs").write_text("5")  # VmHWM := VmRSS
    rss_before = proc_kib(server.worker, "VmRSS")
    own_before, children_before = proc_cpu(server.worker)
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/api/v1/datasets/{dataset_id}/items/", data=body, method="POST",
        headers={"Content-Type": content_type, "Authorization": f"Token {token}"},
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.loads(response.read())
    wall = time.monotonic() - started
    own_after, children_after = proc_cpu(server.worker)
    return {
        "images": len(files), "body_mb": round(len(body) / 2**20, 1), "answer": answer, "wall_s": round(wall, 2),
        "worker_cpu_s": round(own_after - own_before, 2), "children_cpu_s": round(children_after - children_before, 2),
        "rss_before_mb": round(rss_before / 1024, 1), "extra_peak_rss_mb": round((proc_kib(server.worker, "VmHWM") - rss_before) / 1024, 1),
    }


def web_worker(folder: Path, broker: str, bomb: bytes, noise: bytes) -> list[dict]:
    env = django_env(folder, broker)
    manage(env, "migrate", "-v", "0")
    dataset_id, token = manage(env, "shell", "-c", SETUP).split()[-2:]
    server = Server(env)
    results = []
    try:
        per_request = 500_000_000 // (9990 * 9990)
        files = [(f"bomb_{n}.png", bomb) for n in range(per_request)]
        results.append({"case": f"{per_request} x 9,990 x 9,990 PNG (pixels of one request)", **upload(server, int(dataset_id), token, files)})
        results.append({"case": "one PNG of ~48 MB (byte cap)", **upload(server, int(dataset_id), token, [("noise.png", noise)])})
    finally:
        server.stop()
    states = manage(env, "shell", "-c", STATES).strip().splitlines()[-1]
    return [{**result, "item_states_at_end": states} for result in results]


def child_at_limits(folder: Path, bomb: bytes) -> list[dict]:
    os.environ.update(django_env(folder, ""))
    import django

    django.setup()
    from django.test import override_settings

    from labeling.images import image_verify_in_child

    big = folder / "flat_16000.png"
    big.write_bytes(flat_png(16000, 16000))
    (folder / "bomb.png").write_bytes(bomb)
    cases = [
        ("9,990 x 9,990 PNG, default limits", folder / "bomb.png", {}),
        ("9,990 x 9,990 PNG, IMAGE_VERIFY_MEMORY_MB=256", folder / "bomb.png", {"IMAGE_VERIFY_MEMORY_MB": 256}),
        ("9,990 x 9,990 PNG, IMAGE_VERIFY_CPU_SECONDS=1", folder / "bomb.png", {"IMAGE_VERIFY_CPU_SECONDS": 1, "IMAGE_VERIFY_MEMORY_MB": 4096}),
        (
            "16,000 x 16,000 PNG, IMAGE_VERIFY_CPU_SECONDS=1",
            big,
            {"IMAGE_VERIFY_CPU_SECONDS": 1, "IMAGE_VERIFY_MEMORY_MB": 4096, "MAX_IMAGE_PIXELS": 300_000_000},
        ),
    ]
    results = []
    for name, path, limits in cases:
        with override_settings(**limits), path.open("rb") as stream:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            verdict = image_verify_in_child(stream)
            wall = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        results.append({
            "case": name, "verdict": verdict.error or f"ok {verdict.width}x{verdict.height}", "wall_s": round(wall, 2),
            "child_cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
            "children_peak_rss_mb_so_far": round(after.ru_maxrss / 1024, 1),
        })
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="", help="CELERY_BROKER_URL for the web worker (it then only publishes)")
    args = parser.parse_args()
    bomb = flat_png(9990, 9990)
    noise = noise_png(4000, 4000)
    with tempfile.TemporaryDirectory(prefix="bench-image-upload-") as folder:
        report = {
            "mode": f"broker {args.broker}" if args.broker else "eager (no broker): the request runs the verification children",
            "bomb_png_bytes": len(bomb), "noise_png_bytes": len(noise),
            "web_worker": web_worker(Path(folder), args.broker, bomb, noise),
            "verification_child": child_at_limits(Path(folder), bomb),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
