#!/usr/bin/env bash
# The kernels' C test program on every path this machine can run: built natively (gcc and the Swift
# toolchain's clang), then cross-compiled for aarch64 and run under qemu with two CPUs: `max`
# (NEON, dotprod, i8mm) and `cortex-a72` (NEON only). Also checks SPARROW_ISA's refusals.
# Needs gcc-aarch64-linux-gnu and qemu-user-static (Scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
src=Sources/CSparrowKernels
out=.build/kernel-tests
mkdir -p "$out"
flags=(-O2 -std=gnu11 -Wall -Wextra -Werror -I"$src/include" -I"$src" -ISources/CChecksum/include "$src"/*.c
    Sources/CChecksum/crc32c.c Tests/Kernels/kernel_test.c -lpthread -lm)
status=0
run() {  # label, command...
    local label="$1"
    shift
    echo "== $label"
    if ! "$@"; then
        echo "kernel tests: $label FAILED" >&2
        status=1
    fi
}

gcc "${flags[@]}" -o "$out/kernel_test-gcc"
run "x86-64 gcc" "$out/kernel_test-gcc"
if command -v clang >/dev/null; then
    clang "${flags[@]}" -o "$out/kernel_test-clang"
    run "x86-64 clang" "$out/kernel_test-clang"
fi
run "SPARROW_ISA=avx3 is refused" env SPARROW_ISA=avx3 "$out/kernel_test-gcc" --expect-env-error
run "SPARROW_ISA=neon is refused on x86" env SPARROW_ISA=neon "$out/kernel_test-gcc" --expect-env-error
run "SPARROW_ISA=portable is taken" env SPARROW_ISA=portable "$out/kernel_test-gcc" --expect-process portable

for tool in aarch64-linux-gnu-gcc qemu-aarch64-static; do
    command -v "$tool" >/dev/null || { echo "kernel tests: $tool is missing (bash Scripts/setup.sh installs it)" >&2; exit 1; }
done
aarch64-linux-gnu-gcc -static "${flags[@]}" -o "$out/kernel_test-aarch64"
run "aarch64 under qemu -cpu max (neon, dotprod, i8mm)" qemu-aarch64-static -cpu max "$out/kernel_test-aarch64"
run "aarch64 under qemu -cpu cortex-a72 (neon)" qemu-aarch64-static -cpu cortex-a72 "$out/kernel_test-aarch64"
run "SPARROW_ISA=dotprod is refused on a cortex-a72" env SPARROW_ISA=dotprod \
    qemu-aarch64-static -cpu cortex-a72 "$out/kernel_test-aarch64" --expect-env-error
run "SPARROW_ISA=avx2 is refused on ARM" env SPARROW_ISA=avx2 qemu-aarch64-static -cpu max "$out/kernel_test-aarch64" --expect-env-error
run "SPARROW_ISA=neon is taken on ARM" env SPARROW_ISA=neon qemu-aarch64-static -cpu max "$out/kernel_test-aarch64" --expect-process neon
[ "$status" -eq 0 ] || { echo "kernel tests FAILED" >&2; exit 1; }
echo "kernel tests: all paths passed"
