"""List functions longer than a limit (default 80 lines, decorators and docstring included).

Usage: python -P hack/long_functions.py [--max N] PATH...   (exit 1 when any is found)
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path


def long_functions(path: Path, limit: int) -> Iterator[tuple[str, int, str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - start + 1
            if length > limit:
                yield str(path), node.lineno, node.name, length


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=80)
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    files = sorted(f for p in args.paths for f in ([p] if p.is_file() else p.rglob("*.py")))
    found = [hit for f in files for hit in long_functions(f, args.max)]
    for path, line, name, length in found:
        print(f"{path}:{line} {name} ({length} lines)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
