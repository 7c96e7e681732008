#!/usr/bin/env bash
# The GUI tests again, in random order (pytest-randomly), while a CPU hog keeps every core busy: timers that
# outlive their window, callbacks that reach a deleted widget and other timing-dependent bugs show up here
# instead of at a library's desk. The autouse fixture in tests/conftest.py fails any test during which an
# exception reached the Qt event loop.
#
# Usage: .ci/gui_under_load.sh [RUNS] [extra pytest args...]
#   RUNS (default 1): consecutive loaded runs, each with a new random order; stops at the first failure.
#   The seed of each run is printed, so a failure can be replayed (with or without the load):
#   .venv/bin/python -m pytest -p randomly -p no:cacheprovider --randomly-seed=N FILES...
# Environment: CALLSLIP_HOG_WORKERS (default: the number of cores) busy loops; CALLSLIP_RANDOM_SEED a fixed seed.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-1}"
shift || true
python=.venv/bin/python
[ -x "$python" ] || python=python3

# The GUI tests: every test module that drives widgets through pytest-qt's qtbot (new ones join by themselves).
mapfile -t gui_tests < <(grep -l -E '\bqtbot\b' tests/test_*.py | sort)
if [ "${#gui_tests[@]}" -eq 0 ]; then
  echo "FAIL: no GUI tests found (tests/test_*.py using qtbot)" >&2
  exit 1
fi

workers="${CALLSLIP_HOG_WORKERS:-$(nproc 2>/dev/null || echo 2)}"
hogs=()
stop_hogs() {
  for pid in "${hogs[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${hogs[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  hogs=()
}
trap stop_hogs EXIT INT TERM

for _ in $(seq 1 "$workers"); do
  # A plain busy loop per core, at normal priority: the tests compete for the CPU as on a busy workstation.
  "$python" -c 'while True: pass' &
  hogs+=("$!")
done
echo "+ CPU hog: ${#hogs[@]} busy loop(s) (pids ${hogs[*]})"

passed=0
for run in $(seq 1 "$runs"); do
  seed="${CALLSLIP_RANDOM_SEED:-$((RANDOM * 32768 + RANDOM))}"
  echo "+ loaded run $run/$runs: ${#gui_tests[@]} GUI test files in random order (--randomly-seed=$seed)"
  # Not the slow tier (the PyInstaller build ran in the first pass; under the hog it only burns minutes).
  if "$python" -m pytest -q -p randomly -p no:cacheprovider --randomly-seed="$seed" -m "not slow" "${gui_tests[@]}" "$@"; then
    passed=$((passed + 1))
  else
    echo "FAIL: loaded run $run failed after $passed consecutive passing run(s)" >&2
    exit 1
  fi
done
echo "GUI tests under load: $passed consecutive loaded run(s) passed"
