#!/usr/bin/env bash
# ThreadSanitizer over the Swift suites where threads meet: the expert cache and its I/O lane, the
# scheduler, the public API (sessions on several threads sharing a model) and a model file changed
# under a session. A separate build (.build/tsan, debug: TSan wants the frames), so the release
# build the other checks use stays as it is. Part of the README's test command.
#   bash Scripts/tsan.sh [SUITE-FILTER]     default: the suites below
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
filter="${1:-ExpertCacheTests|SchedulerPolicyTests|SchedulerTests|SwiftAPITests|ChangedFileTests}"
scratch=.build/tsan
log="$scratch.log"
mkdir -p .build
if ! swift build --scratch-path "$scratch" --sanitize=thread -Xswiftc -DSPARROW_TSAN --build-tests >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "tsan.sh: the ThreadSanitizer build failed (log $log)" >&2
    exit 1
fi
# halt_on_error: a race fails the run instead of scrolling by.
if ! TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" swift test --scratch-path "$scratch" -Xswiftc -DSPARROW_TSAN \
    --sanitize=thread --skip-build --filter "$filter" >>"$log" 2>&1; then
    grep -E -A30 "WARNING: ThreadSanitizer|✘" "$log" | head -80 >&2
    echo "tsan.sh: FAILED (log $log)" >&2
    exit 1
fi
grep -E "Test run with|Executed" "$log" | tail -2
echo "tsan.sh: no data race in $filter"
