"""The design's import rules, checked on the source: edges on top, pure modules at the bottom."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "acquisition"
EDGES = {"cli", "cli_qr", "cli_users", "__main__"}
PURE = {"messengers", "qr", "refs", "codes", "errors", "config", "visitors"}


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_web_package_imports_starlette() -> None:
    for name, tree in modules().items():
        if name.split(".")[0] != "web":
            assert not any(i.startswith("starlette") for i in imports(tree)), name


def test_nothing_below_the_edges_imports_them() -> None:
    for name, tree in modules().items():
        top = name.split(".")[0]
        if top in ("web", *EDGES):
            continue
        bad = [i for i in imports(tree) if i.startswith(("acquisition.web", "acquisition.cli"))]
        assert not bad, f"{name} imports {bad}"


def test_pure_modules_touch_no_database() -> None:
    for name, tree in modules().items():
        if name.split(".")[0] in PURE:
            bad = [
                i
                for i in imports(tree)
                if i.startswith(("sqlalchemy", "acquisition.models", "acquisition.db"))
            ]
            assert not bad, f"{name} imports {bad}"


def test_domain_functions_never_commit() -> None:
    """The edge owns the transaction; background loops that own their own sessions are edges too."""
    owners = {"clicks", "relay", "rollups", "db"}
    for name, tree in modules().items():
        top = name.split(".")[0]
        if top in ("web", "models", *EDGES, *owners):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "commit":
                raise AssertionError(f"{name}:{node.lineno} commits")


def test_no_module_deletes_a_link_or_a_channel() -> None:
    """Clicks point at links and channels without foreign keys (migration 0008: their checks
    were half of PostgreSQL's work per stored click). A deleted link or channel would leave its
    clicks pointing nowhere, and the reports' joins would drop them without a word."""
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr == "delete":
                    # The ORM's way: nothing here deletes a loaded row; say why if it must.
                    raise AssertionError(f"{name}:{node.lineno}: {ast.unparse(node)}")
                if isinstance(func, ast.Name) and func.id == "delete" and node.args:
                    table = ast.unparse(node.args[0])
                    assert table not in ("Link", "Channel"), f"{name}:{node.lineno} deletes {table}"
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not re.search(r"DELETE\s+FROM\s+(links|channels)\b", node.value, re.I), (
                    f"{name}:{node.lineno}"
                )
