#!/usr/bin/env bash
#
# The CI run of a libFuzzer target: a bounded, seeded session that starts
# from the committed seed corpus and fails on any crash, leak, hang or
# sanitizer report.
#
#   run-fuzz.sh TARGET SEED_CORPUS ARTIFACT_DIR [LIBFUZZER ARGS...]
#
# What the session discovers goes to a private scratch directory that is
# removed afterwards, so the seed corpus stays as committed; an input that
# fails is kept in ARTIFACT_DIR (crash-*, leak-*, timeout-*) to be
# replayed with "TARGET FILE".  Extra arguments override the defaults
# (libFuzzer takes the last value given).
set -euo pipefail

target=$1
seeds=$2
artifacts=$3
shift 3

scratch=$(mktemp -d "${TMPDIR:-/tmp}/blockd-fuzz-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$artifacts"

status=0
"$target" "$scratch" "$seeds" \
    -seed=1 -max_total_time=60 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" \
    -error_exitcode=1 -timeout_exitcode=1 \
    "$@" || status=$?
if ((status != 0)); then
    printf 'run-fuzz.sh: %s failed (status %d); the input is in %s\n' \
        "$(basename "$target")" "$status" "$artifacts" >&2
    # never 77, which meson would count as a skipped test
    exit 1
fi
