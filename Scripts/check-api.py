#!/usr/bin/env python3
"""The public Swift API: every declaration `import Sparrow` makes visible, listed from the sources
(the Sparrow module, SparrowRuntime which it re-exports, and the single types it re-exports from
the lower modules), compared with the list in docs/API.md. Exits 1 when they differ, naming the
differences. `--write` rewrites the list in docs/API.md (after a deliberate API change)."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "API.md"
BEGIN, END = "<!-- api:begin -->", "<!-- api:end -->"

TYPE = re.compile(r"^\s*(?:@[\w()]+\s+)*(public\s+|package\s+|private\s+|fileprivate\s+|internal\s+)?(?:final\s+|indirect\s+)*"
                  r"(class|struct|enum|protocol|actor|extension)\s+([\w.]+)")
MEMBER = re.compile(r"^\s*(?:@[\w()]+\s+)*public\s+(?:(?:static|final|mutating|override|private\(set\)|internal\(set\)|"
                    r"package\(set\)|convenience|required)\s+)*(func|var|let|init|typealias|subscript|case)\b\s*([\w`]*)(\(?)")
CASE = re.compile(r"^\s*(?:indirect\s+)?case\s+(\w+)")


def strip(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    return line.split("//", 1)[0]


def declarations(path, only=None):
    """Public declarations of `path` as 'Type.member kind' lines; `only`: keep just these types."""
    out = []
    stack = []  # (name, depth it opened at, visible)
    depth = 0
    in_doc = False
    for raw in path.read_text().splitlines():
        line = strip(raw)
        if '"""' in raw:
            in_doc = not in_doc
            continue
        if in_doc:
            continue
        t = TYPE.match(line)
        scope = ".".join(s[0] for s in stack)
        visible_scope = all(s[2] for s in stack)
        if t and "{" in line:
            access, kind, name = t.group(1), t.group(2), t.group(3)
            public = kind == "extension" or (access or "").strip() == "public"
            full = (scope + "." if scope else "") + name if kind != "extension" else name
            if public and kind != "extension" and visible_scope and "@_spi" not in line:
                out.append(f"{full} {kind}")
            stack.append((name, depth, public and "@_spi" not in line, kind))
        else:
            m = MEMBER.match(line)
            if m and visible_scope and stack and "@_spi" not in line:
                kind, name = m.group(1), m.group(2) or ""
                out.append(f"{scope}.{name or kind} {kind}")
            elif stack and stack[-1][3] == "enum" and visible_scope and depth == stack[-1][1] + 1:
                c = CASE.match(line)
                if c:
                    for name in re.findall(r"(?:case\s+|,\s*)(\w+)", line.split("//")[0]):
                        out.append(f"{scope}.{name} case")
            elif not stack:
                m = re.match(r"^\s*public\s+(func|var|let)\s+(\w+)", line)
                if m:
                    out.append(f"{m.group(2)} {m.group(1)}")
        depth += line.count("{") - line.count("}")
        while stack and depth <= stack[-1][1]:
            stack.pop()
    if only is not None:
        out = [d for d in out if d.split(" ")[0].split(".")[0] in only]
    return out


def surface():
    decls = []
    for module in ["Sparrow", "SparrowRuntime"]:
        for f in sorted((ROOT / "Sources" / module).rglob("*.swift")):
            decls += declarations(f)
    # Single types re-exported by Sparrow.swift (`@_exported import struct Module.Type`).
    reexported = re.findall(r"@_exported import \w+ (\w+)\.(\w+)", (ROOT / "Sources/Sparrow/Sparrow.swift").read_text())
    for module, name in reexported:
        for f in sorted((ROOT / "Sources" / module).rglob("*.swift")):
            decls += declarations(f, only={name})
    # Extensions of types of other modules appear under their own name; keep what is public.
    return sorted(set(decls))


def undocumented(found):
    """Public declarations of the surface without a `///` comment right above them (attributes
    aside); enum cases and `description` (CustomStringConvertible) are exempt."""
    names = {d.split(" ")[0].split(".")[0] for d in found}
    out = []
    files = [f for m in ["Sparrow", "SparrowRuntime"] for f in sorted((ROOT / "Sources" / m).rglob("*.swift"))]
    files += [f for m in ["SparrowIO", "SparrowFormat", "SparrowQuant"] for f in sorted((ROOT / "Sources" / m).rglob("*.swift"))]
    for f in files:
        lines = f.read_text().splitlines()
        lower = "SparrowRuntime" not in str(f) and "/Sparrow/" not in str(f)
        current = None
        for i, line in enumerate(lines):
            t = TYPE.match(line)
            if t and t.group(2) != "extension" and not line.startswith(" "):
                current = t.group(3)
            if not re.match(r"^\s*(?:@[\w()]+\s+)*public\b", line) or "@_spi" in line or "var description" in line:
                continue
            if lower and current not in names:
                continue
            j = i - 1
            while j >= 0 and lines[j].strip().startswith("@"):
                j -= 1
            if j < 0 or not lines[j].strip().startswith("///"):
                out.append(f"{f.relative_to(ROOT)}:{i + 1}: {line.strip()[:80]}")
    return out


def main():
    found = surface()
    missing_docs = undocumented(found)
    for d in missing_docs:
        print(f"check-api: no doc comment: {d}")
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    listed_block, tail = rest.split(END, 1)
    listed = sorted(l.strip() for l in listed_block.strip().strip("`").splitlines() if l.strip() and not l.startswith("```"))
    if "--write" in sys.argv:
        DOC.write_text(head + BEGIN + "\n```\n" + "\n".join(found) + "\n```\n" + END + tail)
        print(f"check-api: wrote {len(found)} declarations to {DOC.relative_to(ROOT)}")
        return 0
    missing = sorted(set(found) - set(listed))
    stale = sorted(set(listed) - set(found))
    for d in missing:
        print(f"check-api: public but not in docs/API.md: {d}")
    for d in stale:
        print(f"check-api: in docs/API.md but not public: {d}")
    if missing or stale:
        print("check-api: the public API changed; if deliberate, run python3 Scripts/check-api.py --write")
        return 1
    if missing_docs:
        return 1
    print(f"check-api: {len(found)} public declarations, as docs/API.md lists them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
