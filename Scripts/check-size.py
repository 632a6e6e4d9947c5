#!/usr/bin/env python3
"""Keeps the Swift sources readable: no file over 400 lines and no function (or initializer) over
60 lines in Sources/ (the C kernels are exempt). Exits 1 naming each one over."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILE_LINES, FUNCTION_LINES = 400, 60
START = re.compile(r"^\s*(?:@[\w()]+\s+)*(?:(?:public|package|private|fileprivate|internal|static|class|mutating|"
                   r"override|final|convenience|required|nonisolated)\s+)*(func\s+[\w`]+|init[?!]?\s*[(<]|deinit\b)")


def code(line):
    return re.sub(r'"(\\.|[^"\\])*"', '""', line).split("//", 1)[0]


def main():
    problems = []
    for path in sorted((ROOT / "Sources").rglob("*.swift")):
        lines = path.read_text().splitlines()
        rel = path.relative_to(ROOT)
        if len(lines) > FILE_LINES:
            problems.append(f"{rel}: {len(lines)} lines (at most {FILE_LINES})")
        i = 0
        while i < len(lines):
            if START.match(lines[i]):
                depth, opened, j = 0, False, i
                while j < len(lines):
                    c = code(lines[j])
                    depth += c.count("{") - c.count("}")
                    opened = opened or "{" in c
                    if opened and depth <= 0:
                        break
                    j += 1
                if j - i + 1 > FUNCTION_LINES:
                    problems.append(f"{rel}:{i + 1}: {lines[i].strip()[:60]}… is {j - i + 1} lines (at most {FUNCTION_LINES})")
            i += 1
    for p in problems:
        print(f"check-size: {p}")
    if problems:
        return 1
    print(f"check-size: every file ≤ {FILE_LINES} lines, every function ≤ {FUNCTION_LINES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
