#!/usr/bin/env bash
# Installs Sparrow's C interface: the header, libsparrow.so (the Swift runtime linked in, so no
# Swift toolchain is needed where it runs) and a pkg-config file.
#   bash Scripts/install-lib.sh [PREFIX]     (default: $PREFIX, else /usr/local)
# Gives PREFIX/include/sparrow.h, PREFIX/lib/libsparrow.so{,.0,.VERSION}, PREFIX/lib/pkgconfig/sparrow.pc.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${1:-${PREFIX:-/usr/local}}"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
(cd "$root" && swift build -c release --product SparrowC >/dev/null)
version="$(sed -n 's/^#define SPARROW_VERSION_STRING "\(.*\)"$/\1/p' "$root/Include/sparrow.h")"
install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 644 "$root/Include/sparrow.h" "$prefix/include/sparrow.h"
# Symbols are stripped (the exported sparrow_* stay): 30 MB → about a third.
strip --strip-unneeded -o "$prefix/lib/libsparrow.so.$version" "$root/.build/release/libSparrowC.so"
chmod 755 "$prefix/lib/libsparrow.so.$version"
ln -sf "libsparrow.so.$version" "$prefix/lib/libsparrow.so.0"
ln -sf "libsparrow.so.0" "$prefix/lib/libsparrow.so"
cat > "$prefix/lib/pkgconfig/sparrow.pc" <<PC
prefix=$prefix
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: sparrow
Description: Sparse Mixture-of-Experts language models in less memory than the model
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lsparrow
PC
echo "installed sparrow $version in $prefix ($(du -h "$prefix/lib/libsparrow.so.$version" | cut -f1) library)"
