#!/usr/bin/env python3
"""Every Swift file imports only modules its target declares in Package.swift (or the toolchain's),
so the module graph in docs/ARCHITECTURE.md is the real one. Run from the repository root:
    python3 Scripts/check-imports.py
"""
import json
import os
import re
import subprocess
import sys

TOOLCHAIN = {"Foundation", "FoundationEssentials", "Glibc", "Darwin", "Dispatch", "Synchronization", "Testing",
             "XCTest", "_Concurrency"}

package = json.loads(subprocess.run(["swift", "package", "dump-package"], check=True, capture_output=True,
                                    text=True).stdout)
bad = []
for target in package["targets"]:
    if target["type"] == "system":
        continue
    declared = set()
    for dep in target.get("dependencies", []):
        for kind in ("byName", "product", "target"):
            if kind in dep:
                declared.add(dep[kind][0])
    root = target.get("path") or os.path.join("Tests" if target["type"] == "test" else "Sources", target["name"])
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".swift"):
                continue
            path = os.path.join(folder, name)
            for line in open(path, encoding="utf-8"):
                m = re.match(r"\s*(?:@_exported\s+|@testable\s+|@_spi\(\w+\)\s+)?import\s+(?:struct\s+|class\s+|enum\s+|protocol\s+|func\s+)?(\w+)", line)
                if m and m.group(1) not in declared | TOOLCHAIN:
                    bad.append(f"{path}: imports {m.group(1)}, which target {target['name']} does not declare")
for b in bad:
    print(b)
print(f"check-imports: {len(bad)} undeclared import(s)")
sys.exit(1 if bad else 0)
