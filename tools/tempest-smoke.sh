#!/bin/bash
# Run Tempest's smoke tests and its two main scenario modules against this
# stacked host, print the counts, and hold the skips to their reasoned list.
#
# ./stack.py installs and configures Tempest when the `tempest` service is
# enabled (phases/tempest.py); this runs, in its workspace ($DEST/tempest), as
# the stack user, with $TEMPEST_CONFIG, the gate set: `tempest run --smoke`
# plus tempest.scenario.test_server_basic_ops and
# tempest.scenario.test_network_basic_ops (they boot guests, log in as the
# image's user and use sudo, curl, ping, DHCP renewal and hot-plugged NICs).
# Every test Tempest skips must match an entry of $DEST/tempest/etc/
# expected-skips.txt (phases/tempest.py writes it, each entry with its reason):
# an unlisted skip fails the run like a failed test.
#
# With --orchestration (Heat stacked), the orchestration set instead: every test of
# heat-tempest-plugin (heat_tempest_plugin.tests: the gabbi API tests, the functional and the
# scenario tests) but those $DEST/tempest/etc/orchestration-exclude-list.txt leaves out, each
# with its reason, its skips held to etc/orchestration-expected-skips.txt.  It runs from
# $DEST/tempest/orchestration, whose .stestr.conf is the workspace's with one change: the
# group regex keeps each gabbi YAML file's tests (each one a step of the one before) on one
# worker, as Heat's own gate job does; its stestr repository is its own.
#
# Usage: tools/tempest-smoke.sh [-c LOCALRC] [--orchestration] [--concurrency N] [--artifacts DIR]
#                               [-- TEMPEST-RUN-ARGS...]
#   -c, --config    minstack's localrc/local.conf (default: as ./stack.py finds it)
#   --orchestration heat-tempest-plugin's tests instead of the gate set (needs h-api)
#   --concurrency   test workers (default 2: faster than serial on a 2-core host, see below)
#   --artifacts     also keep the console output (tempest-smoke.log) and the subunit
#                   stream (tempest-smoke.subunit) there (tempest-orchestration.* with
#                   --orchestration)
#   after --        passed to `tempest run` as they are (e.g. --regex ..., instead of the
#                   gate set or the orchestration set; the exclude list still applies)
#
# Run as root (or as the stack user).  The last line is "tempest: N passed, N failed, N skipped";
# the exit code is tempest's (0: no test failed), or 3 when a test was skipped for no listed reason.
#
# Concurrency, measured on the 2-core CI host (qemu TCG guests, 2026-11-22, the
# smoke set: 82 passed, 11 skipped, 0 failed both ways): serial 276 s,
# --concurrency 2 205 s.  Most smoke tests wait on API calls and guest boots
# rather than burn CPU, so two workers overlap that waiting.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CONFIG=""
CONCURRENCY=2
ORCHESTRATION=""
ARTIFACTS=""
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        -c|--config) CONFIG=$2; shift 2 ;;
        --orchestration) ORCHESTRATION=1; shift ;;
        --concurrency) CONCURRENCY=$2; shift 2 ;;
        --artifacts) ARTIFACTS=$2; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "tempest-smoke: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$CONCURRENCY" in ''|*[!0-9]*|0) echo "tempest-smoke: --concurrency needs a positive number" >&2; exit 2 ;; esac

# The paths come from minstack's own settings, so a localrc that moves DEST,
# DATA_DIR or TEMPEST_CONFIG is followed exactly as ./stack.py follows it.
VARS=$(cd "$REPO" && .venv/bin/python - "$CONFIG" "$ORCHESTRATION" <<'EOF'
import shlex
import sys

from minstack.cli import load_config
from minstack.errors import MinstackError
from minstack.pipeline import phase_module

tempest = phase_module("tempest")
try:
    settings = load_config(sys.argv[1] or None)
except MinstackError as exc:
    sys.exit(f"tempest-smoke: {exc}")
if not settings.is_enabled("tempest"):
    sys.exit(f"tempest-smoke: the tempest service is not enabled in {settings.source}: "
             "add `enable_service tempest` and run ./stack.py")
if sys.argv[2] and not settings.is_enabled("h-api"):
    sys.exit(f"tempest-smoke: --orchestration needs Heat, not enabled in {settings.source}: "
             "add `enable_service heat` and run ./stack.py")
for name, value in tempest.run_paths(settings).items():
    print(f"{name}={shlex.quote(value)}")
EOF
)
eval "$VARS"

NAME=tempest-smoke
RUN_DIR=$TEMPEST_WORKSPACE
if [ -n "$ORCHESTRATION" ]; then
    NAME=tempest-orchestration
    RUN_DIR=$TEMPEST_WORKSPACE/orchestration
    TEMPEST_EXCLUDE_LIST=$TEMPEST_ORCHESTRATION_EXCLUDE_LIST
    TEMPEST_EXPECTED_SKIPS=$TEMPEST_ORCHESTRATION_EXPECTED_SKIPS
fi

NEEDED=("$TEMPEST_VENV/bin/tempest" "$TEMPEST_WORKSPACE/.stestr.conf" "$TEMPEST_CONFIG")
if [ -n "$ORCHESTRATION" ]; then
    NEEDED+=("$TEMPEST_EXCLUDE_LIST" "$TEMPEST_EXPECTED_SKIPS")
fi
for path in "${NEEDED[@]}"; do
    if [ ! -e "$path" ]; then
        echo "tempest-smoke: $path is missing: run ./stack.py (with the tempest service enabled) first" >&2
        exit 1
    fi
done

# As the stack user, so the workspace (.stestr, locks) stays the stack user's.
as_stack() {
    if [ "$(id -un)" = "$STACK_USER" ]; then
        "$@"
    elif [ "$(id -u)" = 0 ]; then
        runuser -u "$STACK_USER" -- "$@"
    else
        echo "tempest-smoke: run this as root or as $STACK_USER" >&2
        exit 1
    fi
}

# The gate set: Tempest's smoke regex (what --smoke selects) or the two scenario modules.
GATE_REGEX='\[.*\bsmoke\b.*\]|^tempest\.scenario\.(test_server_basic_ops|test_network_basic_ops)\.'
# The orchestration set: every test heat-tempest-plugin has (its exclude list leaves some out).
ORCHESTRATION_REGEX='^heat_tempest_plugin\.tests\.'
# stestr's group regex for the orchestration run: a gabbi YAML file's tests
# (heat_tempest_plugin.tests.api.test_heat_api.<file>_<test>) share one group, so one worker runs
# them in order; any other test id falls to the second branch, Tempest's own ([^\.]*\.)*
GABBI_GROUP_REGEX='heat_tempest_plugin\.tests\.api\.test_heat_api\.[^_]+|([^\.]*\.)*'
if [ ${#EXTRA[@]} -eq 0 ]; then
    if [ -n "$ORCHESTRATION" ]; then
        EXTRA=(--regex "$ORCHESTRATION_REGEX")
    else
        EXTRA=(--regex "$GATE_REGEX")
    fi
fi
if [ -n "$ORCHESTRATION" ]; then
    # the workspace's .stestr.conf (tempest init's: test_path, top_dir) with the gabbi group regex
    as_stack mkdir -p "$RUN_DIR"
    sed "s/^group_regex=.*/group_regex=$(printf '%s' "$GABBI_GROUP_REGEX" | sed 's/[\\&/]/\\&/g')/" \
        "$TEMPEST_WORKSPACE/.stestr.conf" | as_stack tee "$RUN_DIR/.stestr.conf" > /dev/null
    if ! grep -qxF "group_regex=$GABBI_GROUP_REGEX" "$RUN_DIR/.stestr.conf"; then
        echo "$NAME: $TEMPEST_WORKSPACE/.stestr.conf has no group_regex line to replace" >&2
        exit 1
    fi
fi
# The tests this stack's image cannot run, each with its reason (phases/tempest.py writes the list).
EXCLUDED=$(grep -cv '^\s*\(#\|$\)' "$TEMPEST_EXCLUDE_LIST" 2>/dev/null || true)
if [ "${EXCLUDED:-0}" -gt 0 ]; then
    EXTRA+=(--exclude-list "$TEMPEST_EXCLUDE_LIST")
    echo "$NAME: leaving out the tests of $EXCLUDED pattern(s) listed, with the reasons, in $TEMPEST_EXCLUDE_LIST:"
    grep -v '^\s*\(#\|$\)' "$TEMPEST_EXCLUDE_LIST" | sed 's/^/    /'
fi
OUTPUT=$(mktemp /tmp/tempest-smoke.XXXXXX)
trap 'rm -f "$OUTPUT"' EXIT
chmod 0644 "$OUTPUT"

echo "$NAME: tempest run ${EXTRA[*]} --concurrency $CONCURRENCY in $RUN_DIR (log: $TEMPEST_LOG)"
START=$(date +%s)
set +e
(cd "$RUN_DIR" && as_stack "$TEMPEST_VENV/bin/tempest" run --config-file "$TEMPEST_CONFIG" \
    --concurrency "$CONCURRENCY" "${EXTRA[@]}") 2>&1 | tee "$OUTPUT"
STATUS=${PIPESTATUS[0]}
set -e
SECONDS_TAKEN=$(( $(date +%s) - START ))

# subunit-trace's closing block: " - Passed: N", " - Skipped: N", " - Failed: N"
count() { sed -n "s/^ - $1: \([0-9]*\)$/\1/p" "$OUTPUT" | tail -1; }
PASSED=$(count Passed)
FAILED=$(count Failed)
SKIPPED=$(count Skipped)

if [ -n "$ARTIFACTS" ]; then
    mkdir -p "$ARTIFACTS"
    cp "$OUTPUT" "$ARTIFACTS/$NAME.log"
    (cd "$RUN_DIR" && as_stack "$TEMPEST_VENV/bin/stestr" last --subunit) \
        > "$ARTIFACTS/$NAME.subunit" || true
    echo "$NAME: console output and subunit stream in $ARTIFACTS"
fi

if [ -z "$PASSED" ] || [ -z "$FAILED" ]; then
    echo "$NAME: tempest printed no totals (exit $STATUS); see $TEMPEST_LOG" >&2
    [ "$STATUS" -ne 0 ] || STATUS=1
    exit "$STATUS"
fi
echo "$NAME: ran in ${SECONDS_TAKEN}s with --concurrency $CONCURRENCY"
# Each skip subunit-trace reported ("{N} <test or setUpClass (class)> ... SKIPPED: <reason>") must
# match an entry of the expected-skips list; their number cannot exceed the list's length.
if ! "$REPO/.venv/bin/python" - "$OUTPUT" "$TEMPEST_EXPECTED_SKIPS" "$NAME" <<'EOF'
import re
import sys

output, listing = (open(path).read() for path in sys.argv[1:3])
label = sys.argv[3]
allowed = [line.strip() for line in listing.splitlines() if line.strip() and not line.startswith("#")]
skipped = re.findall(r"^\{\d+\} (.+?)(?: \[[\d.]+s\])? \.\.\. SKIPPED: (.*)$", output, re.M)
unlisted = [(name, why) for name, why in skipped if not any(re.search(p, name) for p in allowed)]
for name, why in unlisted:
    print(f"{label}: unexpected skip: {name} ({why})")
print(f"{label}: {len(skipped)} skip(s), {len(unlisted)} not in {sys.argv[2]} ({len(allowed)} listed)")
sys.exit(1 if unlisted or len(skipped) > len(allowed) else 0)
EOF
then
    [ "$STATUS" -ne 0 ] || STATUS=3
fi
echo "tempest: $PASSED passed, $FAILED failed, ${SKIPPED:-0} skipped"
exit "$STATUS"
