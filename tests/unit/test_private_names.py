"""A module's underscored names are its own: no module of the server or client imports another's
(a package's own modules may share its private submodules, as the client's share meter._core)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"meterd": ROOT / "server" / "meterd", "meter": ROOT / "client" / "meter"}
SOURCES = [p for d in PACKAGES.values() for p in d.rglob("*.py") if "v1" not in p.relative_to(d).parts]


def private_imports(path: Path, package: str) -> list[str]:
    """`module.name` for every underscored name this file (a module of `package`, or its directory)
    imports from another of our modules."""
    return [
        f"{node.module}.{alias.name}"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__") and node.module != package
    ]


def package_of(path: Path) -> str:
    for name, directory in PACKAGES.items():
        if path.is_relative_to(directory):
            return ".".join([name, *path.parent.relative_to(directory).parts])
    return ""


def test_no_module_imports_another_modules_private_names():
    assert len(SOURCES) > 100
    found = {str(p.relative_to(ROOT)): hits for p in SOURCES if (hits := private_imports(p, package_of(p)))}
    assert found == {}


def test_the_check_sees_a_private_import_across_packages(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        "from meterd.api.limits_codec import _hidden, public\nfrom meter import _core\nfrom os import _exit\n"
    )
    assert private_imports(planted, "meterd.console") == ["meterd.api.limits_codec._hidden", "meter._core"]
    assert private_imports(planted, "meter") == ["meterd.api.limits_codec._hidden"]
