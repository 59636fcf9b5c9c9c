"""The deployment parts: production settings (`check --deploy`, cookies, HTTPS), static files as
WhiteNoise serves them after `collectstatic`, media in an S3 bucket (moto, in-process), and the
Procfile, the systemd units and deploy/env.example agreeing with the code they start."""

import configparser
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import redis
import requests
from django.conf import settings as django_settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command
from django.test import Client, override_settings

from labeling.services.items import item_create
from tests.factories import DatasetFactory, png_upload
from tests.test_project import PRODUCTION_ENV, PROJECT_ROOT, run_with_env, settings_variables

ENV_EXAMPLE = PROJECT_ROOT / "deploy" / "env.example"
UNITS = PROJECT_ROOT / "deploy" / "systemd"
UNIT_APP_DIR = "/srv/labeling/app"
VENV_BIN = Path(sys.executable).parent


def env_example() -> dict[str, str]:
    """The assignments of deploy/env.example that are not commented out."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line))


def production_settings(*names: str, **env: str) -> dict:
    """The named settings as a process with `env` (on top of PRODUCTION_ENV) sees them."""
    script = f"import json; from django.conf import settings; print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}, default=str))"
    printed = run_with_env(["-c", script], **{**PRODUCTION_ENV, **env})
    assert printed.returncode == 0, printed.stderr
    return json.loads(printed.stdout)


def check_deploy(**env: str) -> str:
    checked = run_with_env(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    return output


def procfile() -> dict[str, str]:
    lines = (PROJECT_ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def run_procfile_command(command: str, *, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """A Procfile command in bash, as honcho or a platform runs it, with the venv's programs first
    on PATH and only `env` among the settings variables (run_with_env's rule)."""
    shell = "import subprocess, sys; sys.exit(subprocess.run(['bash', '-c', sys.argv[1]], timeout=float(sys.argv[2])).returncode)"
    return run_with_env(["-c", shell, command, str(timeout)], PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", **env)


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((UNITS / name).read_text())
    return parser


def unit_names() -> list[str]:
    return sorted(path.name for path in UNITS.glob("*.service"))


# --- Settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("media", ["filesystem", "s3"])
def test_check_deploy_is_silent_with_the_example_environment(media):
    env = {**env_example(), "SECRET_KEY": secrets.token_urlsafe(50), "MEDIA_STORAGE": media}
    if media == "s3":
        env["AWS_STORAGE_BUCKET_NAME"] = "labeling-media"

    output = check_deploy(**env)

    assert "System check identified no issues" in output and "WARNINGS" not in output


def test_production_defaults_keep_cookies_on_https_away_from_scripts_and_cross_site_posts():
    cookies = production_settings(
        "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SAMESITE",
    )

    assert cookies == {
        "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SESSION_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_HTTPONLY": True, "SESSION_COOKIE_SAMESITE": "Lax", "CSRF_COOKIE_SAMESITE": "Lax",
    }


def test_production_defaults_redirect_to_https_with_a_year_of_hsts_and_env_overrides_them():
    names = ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD")

    assert production_settings(*names) == dict(zip(names, [True, 31_536_000, True, True]))
    overridden = {"SECURE_SSL_REDIRECT": "false", "SECURE_HSTS_SECONDS": "600", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "false", "SECURE_HSTS_PRELOAD": "no"}
    assert production_settings(*names, **overridden) == dict(zip(names, [False, 600, False, False]))


def test_production_serves_hashed_static_files_and_development_the_plain_ones():
    backend = production_settings("STORAGES")["STORAGES"]["staticfiles"]["BACKEND"]
    development = production_settings("STORAGES", DEBUG="true")["STORAGES"]["staticfiles"]["BACKEND"]

    assert (backend, development) == (
        "config.storage.CompressedManifestStaticFilesStorage",
        "django.contrib.staticfiles.storage.StaticFilesStorage",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [({"MEDIA_STORAGE": "s3"}, "MEDIA_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME"), ({"MEDIA_STORAGE": "ftp"}, "MEDIA_STORAGE must be filesystem or s3")],
)
def test_settings_refuse_an_incomplete_media_storage(env, message):
    checked = run_with_env(["manage.py", "check"], **env)

    assert checked.returncode != 0 and message in checked.stderr


def process_variables() -> set[str]:
    """Variables that the process definitions read besides the settings: gunicorn.conf.py's and the
    ${VARIABLES} of the Procfile and the units."""
    gunicorn = re.findall(r'env_\w+\("([A-Z0-9_]+)"', (PROJECT_ROOT / "config" / "gunicorn.conf.py").read_text())
    texts = [(PROJECT_ROOT / "Procfile").read_text(), *(path.read_text() for path in UNITS.glob("*.service"))]
    return set(gunicorn) | {name for text in texts for name in re.findall(r"\$\{([A-Z0-9_]+)", text)}


def test_env_example_and_the_readme_name_every_variable_the_processes_read():
    listed = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))
    readme = (PROJECT_ROOT / "README.md").read_text()
    wanted = settings_variables() | process_variables()

    assert sorted(wanted - listed) == []
    assert sorted(name for name in process_variables() if f"`{name}`" not in readme) == []


# --- Static files -----------------------------------------------------------------------------


PRODUCTION_STATIC = {"BACKEND": "config.storage.CompressedManifestStaticFilesStorage"}


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    """`collectstatic` once, with the production storage, into a fresh STATIC_ROOT, with two extra
    ES modules, one importing the other by a relative path."""
    root = tmp_path_factory.mktemp("collected")
    modules = root / "modules" / "deploy_probe"
    modules.mkdir(parents=True)
    (modules / "main.js").write_text('import { answer } from "./answer.js";\nexport default answer;\n')
    (modules / "answer.js").write_text("export const answer = 42;\n")
    static_files = {"STATICFILES_DIRS": [*django_settings.STATICFILES_DIRS, root / "modules"], "STATIC_ROOT": root / "static"}
    with override_settings(**static_files, STORAGES={**django_settings.STORAGES, "staticfiles": PRODUCTION_STATIC}):
        call_command("collectstatic", interactive=False, verbosity=0)
    return static_files


@pytest.fixture
def collected(settings, static_root):
    """The manifest's paths, with the settings of a production process serving them (WhiteNoise
    reading STATIC_ROOT once, no finders)."""
    for name, value in static_root.items():
        setattr(settings, name, value)
    settings.STORAGES = {**settings.STORAGES, "staticfiles": PRODUCTION_STATIC}
    settings.WHITENOISE_AUTOREFRESH = settings.WHITENOISE_USE_FINDERS = False
    return json.loads((static_root["STATIC_ROOT"] / "staticfiles.json").read_text())["paths"]


def test_collectstatic_hashes_every_file_the_templates_name(collected):
    named = {
        name
        for template in (PROJECT_ROOT / "templates").rglob("*.html")
        for name in re.findall(r"""{%\s*static\s+['"]([^'"]+)['"]""", template.read_text())
    }

    assert named and sorted(named - set(collected)) == []
    assert all(re.search(r"\.[0-9a-f]{12}\.", collected[name]) for name in named)


def test_collectstatic_rewrites_module_imports_to_the_hashed_names(collected, settings):
    main = (settings.STATIC_ROOT / collected["deploy_probe/main.js"]).read_text()

    assert f'from "./{Path(collected["deploy_probe/answer.js"]).name}"' in main


@pytest.mark.django_db
def test_whitenoise_serves_the_label_page_assets_compressed_and_cached_forever(collected, labeler, dataset):
    client = Client()  # a new handler, so that WhiteNoise scans the new STATIC_ROOT
    client.force_login(labeler)
    page = client.get(f"/datasets/{dataset.id}/label/").content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)

    assert {url for url in assets if url.endswith(".js")} == {staticfiles_storage.url("labeling/label_page.js")}
    for url in assets:
        response = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
        assert (url, response.status_code, response["Content-Encoding"]) == (url, 200, "gzip")
        assert "immutable" in response["Cache-Control"]
        response.close()


# --- Media in an S3 bucket --------------------------------------------------------------------


@pytest.fixture
def bucket(settings):
    """Media in a bucket of moto's in-process S3, wired as the settings wire MEDIA_STORAGE=s3."""
    moto = pytest.importorskip("moto", reason="moto is not installed (requirements-test.txt)")
    storages = production_settings(
        "STORAGES",
        MEDIA_STORAGE="s3", AWS_STORAGE_BUCKET_NAME="labeling-media", AWS_S3_REGION_NAME="eu-west-1",
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_QUERYSTRING_EXPIRE="300",
    )["STORAGES"]
    with moto.mock_aws():
        client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket="labeling-media", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        settings.STORAGES = {**settings.STORAGES, "default": storages["default"]}
        yield client


@pytest.mark.django_db
def test_an_upload_is_stored_in_the_bucket_and_shown_through_the_members_only_view(bucket, dataset):
    item = item_create(dataset=dataset, reference_id="image_1", image_file=png_upload())

    stored = bucket.get_object(Bucket="labeling-media", Key=item.image.name)
    assert stored["Body"].read().startswith(b"\x89PNG")
    assert item.image_src == f"/media/{item.image.name}"


@pytest.mark.django_db
def test_a_member_is_redirected_to_a_presigned_url_that_expires(bucket, dataset, labeler, client):
    item = item_create(dataset=dataset, reference_id="image_1", image_file=png_upload())
    client.force_login(labeler)

    response = client.get(item.image_src)

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    query = parse_qs(location.query)
    assert (location.hostname.split(".")[0], location.path) == ("labeling-media", f"/{item.image.name}")
    assert (query["X-Amz-Expires"], query["response-content-type"], "X-Amz-Signature" in query) == (["300"], ["image/png"], True)
    assert response["Cache-Control"] == "private, max-age=240"
    downloaded = requests.get(response["Location"], timeout=5)
    assert (downloaded.status_code, downloaded.headers["Content-Type"]) == (200, "image/png")
    assert downloaded.content.startswith(b"\x89PNG")


@pytest.mark.django_db
def test_a_member_of_another_dataset_gets_a_404_and_no_url_from_the_bucket(bucket, dataset, outsider, client):
    item = item_create(dataset=dataset, reference_id="image_1", image_file=png_upload())
    DatasetFactory().memberships.create(user=outsider, role="admin")
    client.force_login(outsider)

    response = client.get(item.image_src)

    assert response.status_code == 404 and "Location" not in response


# --- Processes: Procfile, gunicorn, Celery, systemd --------------------------------------------


def test_the_procfile_starts_the_release_web_worker_and_beat():
    commands = procfile()

    assert sorted(commands) == ["beat", "release", "web", "worker"]
    assert commands["web"] == "gunicorn -c config/gunicorn.conf.py config.wsgi:application"
    assert shlex.split(commands["worker"])[:4] == ["celery", "-A", "config", "worker"]
    assert {"--prefetch-multiplier=1", "-O", "fair"} <= set(shlex.split(commands["worker"]))
    assert shlex.split(commands["beat"])[:4] == ["celery", "-A", "config", "beat"]


def test_the_release_command_migrates_and_collects_static_files(tmp_path):
    released = run_procfile_command(
        procfile()["release"], **PRODUCTION_ENV, SQLITE_PATH=str(tmp_path / "db.sqlite3"), STATIC_ROOT=str(tmp_path / "static")
    )

    assert released.returncode == 0, released.stdout + released.stderr
    assert (tmp_path / "static" / "staticfiles.json").is_file()
    assert run_with_env(["manage.py", "migrate", "--check"], **PRODUCTION_ENV, SQLITE_PATH=str(tmp_path / "db.sqlite3")).returncode == 0


def test_the_web_command_loads_the_gunicorn_config_and_the_wsgi_application():
    checked = run_procfile_command(procfile()["web"] + " --check-config", **PRODUCTION_ENV, WEB_CONCURRENCY="3")
    printed = run_procfile_command(procfile()["web"] + " --print-config", **PRODUCTION_ENV, WEB_CONCURRENCY="3")

    assert checked.returncode == 0, checked.stderr
    assert re.search(r"^workers\s+= 3$", printed.stdout, flags=re.MULTILINE), printed.stdout


def test_a_bad_number_for_gunicorn_stops_it_with_the_variables_name():
    checked = run_procfile_command(procfile()["web"] + " --check-config", **PRODUCTION_ENV, GUNICORN_TIMEOUT="soon")

    assert checked.returncode != 0 and "GUNICORN_TIMEOUT must be an integer, not 'soon'" in checked.stdout + checked.stderr


@pytest.mark.parametrize("process", ["worker", "beat"])
def test_the_celery_commands_import_the_app_and_accept_their_options(process):
    helped = run_procfile_command(procfile()[process] + " --help")

    assert helped.returncode == 0, helped.stdout + helped.stderr


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set: no Redis for a real worker")
@pytest.mark.parametrize(("process", "ready"), [("worker", " ready."), ("beat", "beat: Starting...")])
def test_the_celery_commands_start_on_redis(process, ready, tmp_path):
    broker = re.sub(r"/\d*$", "/13", os.environ["TEST_REDIS_URL"])  # a database of its own
    queue = f"deploy-test-{uuid.uuid4().hex[:12]}"  # so that it takes no other test's messages
    extra = f" -Q {queue} -n {queue}@%h" if process == "worker" else ""
    log = tmp_path / "celery.log"
    shell = subprocess.Popen(
        ["bash", "-c", f"exec {procfile()[process]}{extra}"],
        cwd=PROJECT_ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**{k: v for k, v in os.environ.items() if k not in settings_variables()}, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
             "CELERY_BROKER_URL": broker, "CELERY_BEAT_SCHEDULE_FILE": str(tmp_path / "schedule"), "CELERY_CONCURRENCY": "2"},
    )
    try:
        deadline = time.monotonic() + 30
        while ready not in log.read_text(errors="replace") and shell.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        output = log.read_text(errors="replace")
        assert ready in output and shell.poll() is None, output
        if process == "worker":
            assert "concurrency: 2 (prefork)" in output, output
    finally:
        shell.terminate()
        shell.wait(timeout=30)
        client = redis.Redis.from_url(broker)
        for key in client.scan_iter(f"*{queue}*"):
            client.delete(key)


@pytest.mark.parametrize("name", ["labeling-web.service", "labeling-worker@.service", "labeling-beat.service"])
def test_each_unit_reads_the_env_file_restarts_on_failure_and_is_hardened(name):
    service = unit(name)["Service"]

    assert (service["EnvironmentFile"], service["Restart"], service["User"]) == ("/etc/labeling/env", "on-failure", "labeling")
    assert (service["NoNewPrivileges"], service["ProtectSystem"], service["ProtectHome"], service["PrivateTmp"]) == ("yes", "strict", "yes", "yes")
    assert service["WorkingDirectory"] == UNIT_APP_DIR


def unit_command(name: str) -> list[str]:
    """The unit's ExecStart with the venv's path taken off the program."""
    program, *arguments = shlex.split(unit(name)["Service"]["ExecStart"])
    assert program.startswith(f"{UNIT_APP_DIR}/.venv/bin/")
    return [Path(program).name, *arguments]


def test_the_units_run_the_procfiles_commands():
    commands = procfile()
    # ${NAME:-default} in the Procfile; systemd has no defaults: Environment= sets them.
    worker = shlex.split(re.sub(r"\$\{([A-Z_]+):-[^}]*\}", r"${\1}", commands["worker"]))

    assert unit_command("labeling-web.service") == shlex.split(commands["web"])
    assert [argument for argument in unit_command("labeling-worker@.service") if argument not in ("-n", "worker%i@%H")] == worker
    assert unit_command("labeling-beat.service")[:5] == shlex.split(commands["beat"])[:5]
    assert unit("labeling-worker@.service")["Service"]["Environment"] == "CELERY_CONCURRENCY=2 CELERY_MAX_TASKS_PER_CHILD=200"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units(tmp_path):
    """With the app folder pointed at this checkout, so that the programs exist."""
    for name in unit_names():
        (tmp_path / name).write_text((UNITS / name).read_text().replace(UNIT_APP_DIR, str(PROJECT_ROOT)))
    instances = [name.replace("@.", "@1.") for name in unit_names()]

    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", *instances], cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")
