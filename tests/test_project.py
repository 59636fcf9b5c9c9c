"""Project-wide guarantees: committed migrations, settings that fail loudly and pass `check --deploy`,
the embedded default, one-way app dependencies, exact pins, and database locking that queues writers."""

import ast
import json
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection, transaction
from packaging.requirements import Requirement

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def settings_variables() -> set[str]:
    """Every environment variable config/settings.py reads: the first argument of its env_* helpers."""
    tree = ast.parse((PROJECT_ROOT / "config" / "settings.py").read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id.startswith("env_")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


PRODUCTION_ENV = {
    "DEBUG": "false",
    # Long and varied enough for security.W009.
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "labels.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://labels.example.com",
}


def run_with_env(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """Run `python <args>` in the project folder with only `env` set among the settings variables, so
    that what a test asserts does not depend on what the person running it has exported."""
    ignored = settings_variables()
    clean = {name: value for name, value in os.environ.items() if name not in ignored}
    clean["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_in_subprocess(**env: str) -> dict:
    printed = run_with_env(
        [
            "-c",
            "import json; from django.conf import settings as s; print(json.dumps({"
            "'engine': s.DATABASES['default']['ENGINE'], 'eager': s.CELERY_TASK_ALWAYS_EAGER}))",
        ],
        **env,
    )
    assert printed.returncode == 0, printed.stderr
    return json.loads(printed.stdout)


def test_migrations_are_committed(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_check_deploy_is_silent_with_production_settings():
    # DATABASE_URL is left to whatever the test run uses: `check` does not connect to the database.
    env = dict(PRODUCTION_ENV)
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]

    checked = run_with_env(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)

    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    assert "WARNINGS" not in output
    assert not [line for line in output.splitlines() if line.startswith("?:")], output
    assert "System check identified no issues" in output


def test_settings_refuse_to_load_without_a_secret_key_when_debug_is_off():
    checked = run_with_env(["manage.py", "check"], **{**PRODUCTION_ENV, "SECRET_KEY": ""})

    assert checked.returncode != 0
    assert "SECRET_KEY must be set" in checked.stderr


def test_settings_refuse_a_boolean_that_is_neither_true_nor_false():
    checked = run_with_env(["manage.py", "check"], DEBUG="maybe")

    assert checked.returncode != 0
    assert "DEBUG must be true or false, not 'maybe'" in checked.stderr


def test_embedded_default_uses_sqlite_and_eager_celery():
    assert settings_in_subprocess() == {"engine": "django.db.backends.sqlite3", "eager": True}


@pytest.mark.parametrize("variable", ["CELERY_BROKER_URL", "REDIS_URL"])
def test_a_broker_url_turns_eager_celery_off(variable):
    assert settings_in_subprocess(**{variable: "redis://127.0.0.1:6379/0"})["eager"] is False


def test_every_environment_variable_is_documented_in_the_readme():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert sorted(name for name in settings_variables() if f"`{name}`" not in readme) == []


def absolute_imports(node: ast.AST) -> list[str]:
    """The modules an import statement may load. Relative imports are left out: from inside the
    top-level package `taxonomies` they cannot reach `labeling`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0:
        # `from x import y` may load the module x.y.
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return []


def test_taxonomies_never_imports_labeling():
    """Dependencies run one way: labeling may import taxonomies, never the reverse."""
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}"
        for path in sorted((PROJECT_ROOT / "taxonomies").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if any(name == "labeling" or name.startswith("labeling.") for name in absolute_imports(node))
    ]
    assert offenders == []


def test_requirements_are_pinned():
    unpinned = []
    for path in sorted(PROJECT_ROOT.glob("requirements*.txt")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith(("#", "-r ", "-c ")):
                continue
            specifiers = list(Requirement(line).specifier)
            if not (len(specifiers) == 1 and specifiers[0].operator == "==" and "*" not in specifiers[0].version):
                unpinned.append(f"{path.name}:{number}: {line}")
    assert unpinned == []


@pytest.mark.django_db(transaction=True)
def test_a_second_writer_waits_for_the_first_instead_of_failing():
    """Concurrent writes must queue on the lock on both backends, in tests as in production.

    On SQLite this needs the test database to be a file: Django's default in-memory test database
    uses a shared cache, whose table locks fail at once ("database table is locked") instead of
    waiting out the busy timeout, so concurrency tests would not see what production sees.
    """
    first_has_written = threading.Event()
    second_has_tried = threading.Event()

    def first_writer():
        try:
            with transaction.atomic():
                Group.objects.create(name="first")
                first_has_written.set()
                # Hold the write lock until the second writer is blocked on it (or has got through).
                second_has_tried.wait(timeout=0.5)
        finally:
            connection.close()

    thread = threading.Thread(target=first_writer)
    thread.start()
    assert first_has_written.wait(timeout=10)
    try:
        with transaction.atomic():
            Group.objects.create(name="second")
    finally:
        second_has_tried.set()
        thread.join()

    assert sorted(Group.objects.values_list("name", flat=True)) == ["first", "second"]
