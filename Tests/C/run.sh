#!/usr/bin/env bash
# The C interface, checked from the outside, as a C user gets it: installs libsparrow into a
# scratch prefix, then
#   - compiles Include/sparrow.h as C11 and as C++17 (warnings are errors);
#   - checks that the library exports only sparrow_* (nm -D);
#   - runs Tests/C/api_test.c (every entry point, every bad input) under AddressSanitizer and
#     UndefinedBehaviorSanitizer, and Tests/C/threads_test.c (one model, sessions on 4 threads)
#     under ThreadSanitizer;
#   - builds and runs the three examples (Examples/c-generate, c-multithread, swift-generate) on
#     the demo model, and checks that greedy output through C, Swift and the CLI is identical.
# Needs the release build (swift build -c release); part of the README's test command.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
work="$root/.build/c-tests"
prefix="$work/prefix"
rm -rf "$work"
mkdir -p "$work"
cc="${CC:-cc}"
cxx="${CXX:-c++}"
fail() { echo "Tests/C: FAILED: $*" >&2; exit 1; }

bash Scripts/install-lib.sh "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
lib="$prefix/lib/libsparrow.so"
cflags="$(pkg-config --cflags sparrow)"
libs="$(pkg-config --libs sparrow) -Wl,-rpath,$prefix/lib"

# The header alone, in both languages.
printf '#include <sparrow.h>\nint main(void) { return sparrow_version() == 0; }\n' > "$work/header.c"
$cc -std=c11 -pedantic -Wall -Wextra -Werror $cflags -c "$work/header.c" -o "$work/header-c.o" || fail "header as C11"
$cxx -std=c++17 -pedantic -Wall -Wextra -Werror $cflags -x c++ -c "$work/header.c" -o "$work/header-cxx.o" || fail "header as C++17"
$cxx "$work/header-cxx.o" -o "$work/header-cxx" $libs && "$work/header-cxx" || fail "a C++ program linking libsparrow"
echo "Tests/C: header compiles as C11 and C++17"

# Exported symbols: every defined global (upper-case type) must be sparrow_*. The linker also
# lists some of the static Swift runtime's data symbols in .dynsym as LOCAL (lower-case type):
# not visible to programs, so allowed.
# The version node itself is an absolute symbol (type A) named SPARROW_0.1; every function carries it.
others="$(nm -D --defined-only "$lib" | awk '$2 ~ /^[A-Z]$/ && $2 != "A" && $3 !~ /^sparrow_/ {print $3}')"
[ -z "$others" ] || fail "libsparrow exports symbols other than sparrow_*: $(echo "$others" | head -5)"
nm -D --defined-only "$lib" | awk '$2 == "A" {print $3}' | grep -qx 'SPARROW_0.1' || fail "no SPARROW_0.1 version node"
unversioned="$(nm -D --defined-only "$lib" | awk '$2 ~ /^[A-Z]$/ && $2 != "A" && $3 !~ /@@SPARROW_0\.1$/ {print $3}')"
[ -z "$unversioned" ] || fail "exports without the SPARROW_0.1 version: $(echo "$unversioned" | head -5)"
exported="$(nm -D --defined-only "$lib" | awk '$2 ~ /^[A-Z]$/ && $2 != "A"' | wc -l)"
declared="$(grep -oE '\bsparrow_[a-z_]+\(' Include/sparrow.h | sort -u | wc -l)"
[ "$exported" -eq "$declared" ] || fail "libsparrow exports $exported sparrow_* symbols, the header declares $declared functions"
echo "Tests/C: libsparrow exports only sparrow_* ($exported symbols, as declared, version SPARROW_0.1); $(du -hL "$lib" | cut -f1) stripped"

# No Swift toolchain needed where it runs: it depends on system libraries only.
deps="$(ldd "$lib")"
if echo "$deps" | grep -qiE 'swift|not found'; then fail "libsparrow needs more than system libraries: $deps"; fi
echo "Tests/C: libsparrow needs only $(echo "$deps" | awk '$1 ~ /^lib/ {print $1}' | tr '\n' ' ')"

# The demo model.
model="$work/demo.spw"
.build/release/sparrow convert Models/tiny-qwen3moe -o "$model" >/dev/null

# Every entry point and bad input, under ASan + UBSan; one model on several threads under TSan.
$cc -std=c11 -Wall -Wextra -Werror -g -fsanitize=address,undefined -fno-sanitize-recover=undefined $cflags \
    Tests/C/api_test.c -o "$work/api_test" $libs -lm
"$work/api_test" "$model" || fail "api_test"
$cc -std=c11 -Wall -Wextra -Werror -g -fsanitize=thread $cflags Tests/C/threads_test.c -o "$work/threads_test" \
    $libs -lpthread
TSAN_OPTIONS="halt_on_error=1" "$work/threads_test" "$model" 4 || fail "threads_test under ThreadSanitizer"

# The examples, built as their READMEs say.
prompt="def fibonacci(n):"
make -s -C Examples/c-generate clean c-generate
make -s -C Examples/c-multithread clean c-multithread
Examples/c-generate/c-generate -m "$model" -p "$prompt" -n 24 > "$work/c.txt" 2>"$work/c.err" || fail "c-generate: $(cat "$work/c.err")"
Examples/c-generate/c-generate -m "$model" -p "$prompt" -n 24 --budget 64000000 > "$work/c-budget.txt" 2>"$work/c-budget.err" ||
    fail "c-generate --budget: $(cat "$work/c-budget.err")"
grep -q '"budget":64000000' "$work/c-budget.err" || fail "c-generate --budget did not report its budget: $(cat "$work/c-budget.err")"
Examples/c-multithread/c-multithread "$model" 4 16 > "$work/mt.txt" || fail "c-multithread"
# Without the Swift toolchain: hide its directory (a private mount namespace, where permitted).
toolchain="$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")"
case "$toolchain" in /|/usr|/usr/local) toolchain="" ;; esac  # a system-wide install cannot be hidden
if [ -n "$toolchain" ] && unshare -m --propagation private true 2>/dev/null; then
    mkdir -p "$work/empty"
    unshare -m --propagation private bash -c "mount --bind '$work/empty' '$toolchain' && [ -z \"\$(ls '$toolchain')\" ] &&
        Examples/c-generate/c-generate -m '$model' -p '$prompt' -n 24 > '$work/c-no-swift.txt' 2>/dev/null" ||
        fail "c-generate with the Swift toolchain ($toolchain) hidden"
    cmp -s "$work/c.txt" "$work/c-no-swift.txt" || fail "c-generate printed something else with the toolchain hidden"
    echo "Tests/C: c-generate runs with the Swift toolchain ($toolchain) hidden"
else
    echo "Tests/C: (no mount namespace here, or the toolchain is installed system-wide: the run without it is skipped)"
fi
[ "$(grep -c '^\[thread ' "$work/mt.txt")" -eq 4 ] || fail "c-multithread printed $(cat "$work/mt.txt")"
rm -rf Examples/swift-generate/.build  # a fresh build: an incremental one can miss files added to Sparrow
(cd Examples/swift-generate && swift build -c release >"$work/swift-build.log" 2>&1) || fail "building Examples/swift-generate: $(tail -20 "$work/swift-build.log")"
Examples/swift-generate/.build/release/swift-generate "$model" "$prompt" 24 > "$work/swift.txt" || fail "swift-generate"
.build/release/sparrow run -m "$model" -p "$prompt" -n 24 --greedy > "$work/cli.txt"
for f in c c-budget swift; do
    cmp -s "$work/cli.txt" "$work/$f.txt" || fail "greedy output differs between the CLI and $f: $(cat "$work/cli.txt") vs $(cat "$work/$f.txt")"
done
echo "Tests/C: examples run; greedy output identical through the CLI, C (resident and budgeted) and Swift:"
cat "$work/cli.txt"
echo "Tests/C: all passed"
