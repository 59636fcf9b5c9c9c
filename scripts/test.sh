#!/usr/bin/env bash
# The test suite on every database we promise to support: PostgreSQL, if it answers on
# 127.0.0.1:5432, and then SQLite, always, because the constraint and concurrency guarantees must
# hold on both; then the page's JavaScript modules with `node --test` when node is installed.
# Arguments go to pytest (`make test ARGS="-k hotkey"`). Exits non-zero if any run fails or
# collects no test.
#
# If Redis answers on 127.0.0.1:6379, TEST_REDIS_URL=redis://127.0.0.1:6379/15 is exported for the
# tests that start a real Celery worker on a real broker; they skip without it. It is not REDIS_URL,
# which the settings read as the broker: every other test behaves the same whether Redis runs or not.
#
# REQUIRE_POSTGRES=1 (set by .ci/run) makes a missing PostgreSQL an error instead of a skip.
set -uo pipefail
cd "$(dirname "$0")/.."
trap 'exit 130' INT

PYTHON=.venv/bin/python
POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test  # pytest-django creates and drops test_test
REDIS_TEST_URL=redis://127.0.0.1:6379/15

# The developer's own database and broker never leak into the tests; each run sets what it uses.
unset DATABASE_URL CELERY_BROKER_URL REDIS_URL

# Each probe prints "ok" when the service answers, else the reason it does not (a probe that
# crashes prints neither, and counts as not answering).
postgres_probe=$("$PYTHON" -c '
import sys, psycopg
try:
    psycopg.connect(sys.argv[1], connect_timeout=3).close()
    print("ok")
except psycopg.Error as error:
    print(str(error).strip().splitlines()[0])
' "${POSTGRES_URL%/*}/postgres")
redis_probe=$("$PYTHON" -c '
import sys, redis
try:
    redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2, socket_timeout=2).ping()
    print("ok")
except redis.RedisError as error:
    print(error)
' "$REDIS_TEST_URL")

if [ "$postgres_probe" != ok ] && [ "${REQUIRE_POSTGRES:-}" = 1 ]; then
  echo "PostgreSQL is required (REQUIRE_POSTGRES=1) but does not answer: ${postgres_probe:-probe failed}" >&2
  exit 1
fi
if [ "$redis_probe" = ok ]; then
  export TEST_REDIS_URL=$REDIS_TEST_URL
fi

summary=()
failed=0

# run_suite LABEL DATABASE_URL [pytest args...]; an empty DATABASE_URL means SQLite.
run_suite() {
  local label=$1 database_url=$2 started=$SECONDS status=0
  shift 2
  printf '\n=== %s ===\n' "$label"
  (
    if [ -n "$database_url" ]; then export DATABASE_URL=$database_url; fi
    exec "$PYTHON" -m pytest "$@"
  ) || status=$?
  local verdict="passed ($((SECONDS - started))s)"
  if [ "$status" -eq 5 ]; then
    verdict="FAILED: pytest collected no tests (exit code 5); check ARGS"
  elif [ "$status" -ne 0 ]; then
    verdict="FAILED ($((SECONDS - started))s, pytest exit code $status)"
  fi
  [ "$status" -eq 0 ] || failed=1
  summary+=("$label: $verdict")
}

if [ "$postgres_probe" = ok ]; then
  run_suite "PostgreSQL (127.0.0.1:5432, database test_test)" "$POSTGRES_URL" "$@"
else
  summary+=("PostgreSQL: skipped, not answering on 127.0.0.1:5432 (${postgres_probe:-probe failed})")
fi
run_suite "SQLite" "" "$@"

# The page's pure ES modules (static/labeling/), with Node's own test runner; no npm packages.
if command -v node >/dev/null 2>&1; then
  printf '\n=== JavaScript (node --test tests/js/) ===\n'
  if node --test tests/js/; then
    summary+=("JavaScript: passed")
  else
    summary+=("JavaScript: FAILED (node --test tests/js/)")
    failed=1
  fi
else
  summary+=("JavaScript: skipped, node is not installed (on Debian: apt-get install nodejs)")
fi

if [ "$redis_probe" = ok ]; then
  summary+=("Redis: TEST_REDIS_URL=$REDIS_TEST_URL exported for the broker tests")
else
  summary+=("Redis: not answering on 127.0.0.1:6379, broker tests skipped (${redis_probe:-probe failed})")
fi

printf '\n=== Summary ===\n'
printf '%s\n' "${summary[@]}"
exit "$failed"
