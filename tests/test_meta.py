"""Tests about the tests: every test can fail. A test function must contain an ``assert``, a
``pytest.raises``/``pytest.warns`` block, a call to a helper that asserts (``oracle.check_row``,
``assert_*``), or, for fuzz tests, a ``try`` that tolerates only one specific exception (any other
fails the test)."""

from __future__ import annotations

import ast
from pathlib import Path

ASSERTING_CALLS = {"raises", "warns", "check_row", "fail"}


def _asserts(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assert):
            return True
        if isinstance(sub, ast.Call):
            func = sub.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ASSERTING_CALLS or name.startswith("assert_"):
                return True
        if isinstance(sub, ast.Try) and sub.handlers and all(
                h.type is not None and getattr(h.type, "id", "") not in ("Exception", "BaseException")
                for h in sub.handlers):
            return True
    return False


def test_every_test_function_asserts():
    missing = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                if not _asserts(node):
                    missing.append(f"{path.name}::{node.name}")
    assert not missing, f"tests that cannot fail: {', '.join(missing)}"
