#!/usr/bin/env bash
# Installs the system packages Sparrow builds against (Debian/Ubuntu), if any is missing: liburing
# and zstd for the library; pkg-config, a C/C++ compiler, make and binutils (nm, strip) for the C
# interface, its tests and examples; python3 for the import check and python3-numpy for
# Scripts/reference/widen_experts.py (tested); the aarch64 cross compiler and qemu for the kernels' ARM tests.
set -euo pipefail
need=()
for p in liburing-dev libzstd-dev pkg-config gcc g++ make binutils python3 python3-numpy gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
command -v swift >/dev/null || { echo "setup: the Swift toolchain (6.1 or later) is not on PATH" >&2; exit 1; }
