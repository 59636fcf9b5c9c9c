#!/usr/bin/env bash
# Run tests again and again on a busy machine: one CPU hog per core (a `while True: pass` process)
# beside LANES pytest runs at a time, RUNS runs in all, then the hogs are stopped. Prints each run's
# outcome and the tally (runs, failed runs, the tests that failed and how often). Arguments go to
# pytest; without a path under tests/, the tests that wait on workers, servers or clocks.
#
#   scripts/flake-check.sh                                   # RUNS=50 LANES=3, SQLite
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/flake scripts/flake-check.sh
#   RUNS=10 scripts/flake-check.sh tests/labeling/sync/test_worker.py
#
# Each lane has a database of its own (DATABASE_URL's name, or SQLITE_PATH's, with the lane number
# appended) and keeps it between its runs (--reuse-db). TEST_REDIS_URL is passed on as it is set.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}
LANES=${LANES:-3}
HOGS=${HOGS:-$(nproc)}
OUT=${OUT:-$(mktemp -d /tmp/flake-check.XXXXXX)}
mkdir -p "$OUT"
PYTHON=.venv/bin/python
if ! printf '%s\n' "$@" | grep -q '^tests'; then
  faults=tests/labeling/sync/test_faults.py
  set -- "$@" tests/labeling/sync/test_worker.py tests/test_fault_suite_smoke.py tests/labeling/sync/test_two_workers.py \
    tests/labeling/test_queue_concurrency.py tests/labeling/sync/test_concurrency.py tests/labeling/api/test_queue.py::TestNext \
    "$faults::test_a_transient_status_schedules_a_retry_with_backoff" "$faults::test_retry_after_is_honoured_when_longer_than_the_backoff" \
    "$faults::test_the_delay_doubles_with_each_attempt_up_to_the_maximum" "$faults::test_the_delay_is_never_under_half_the_backoff" \
    "$faults::test_a_fresh_answer_batched_with_a_much_retried_one_waits_its_own_first_delay" "$faults::test_network_faults_schedule_a_retry" \
    tests/test_health.py tests/labeling/test_remote_images.py
fi

hogs=() lanes=()
stop_hogs() { for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null; done; wait "${hogs[@]}" 2>/dev/null; }
trap 'stop_hogs; for pid in "${lanes[@]}"; do kill "$pid" 2>/dev/null; done; exit 130' INT TERM
for _ in $(seq "$HOGS"); do "$PYTHON" -c 'while True: pass' & hogs+=($!); done

lane() {
  local number=$1 env=(SQLITE_PATH="${SQLITE_PATH:-/tmp/flake-check}-lane$number.sqlite3")
  shift
  [ -n "${DATABASE_URL:-}" ] && env+=(DATABASE_URL="${DATABASE_URL}_lane$number")
  for run in $(seq "$number" "$LANES" "$RUNS"); do
    env "${env[@]}" "$PYTHON" -m pytest "$@" -q -p no:cacheprovider --reuse-db >"$OUT/run$run.log" 2>&1
    echo $? >"$OUT/run$run.rc"
    echo "run $run (lane $number): $(tail -n 1 "$OUT/run$run.log")"
  done
}
for number in $(seq "$LANES"); do lane "$number" "$@" & lanes+=($!); done
wait "${lanes[@]}"
stop_hogs

failed=$(grep -L -x 0 "$OUT"/run*.rc | wc -l)
echo "runs: $RUNS, failed runs: $failed (logs in $OUT)"
grep -h -o -E "^(FAILED|ERROR) [^ ]+" "$OUT"/run*.log | sort | uniq -c | sort -rn
[ "$failed" -eq 0 ]
