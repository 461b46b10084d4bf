"""Layers point down: product code never imports the test harness, channels never import the
command line, and the pytest plugin costs other projects' test runs nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import kernl_trio
import kernl_trio.local
import kernl_trio.testing

PACKAGE = Path(kernl_trio.__file__).parent


@cache  # each test walks every module
def _imports(path: Path) -> frozenset[str]:
    """Absolute names of the kernl_trio modules ``path`` imports."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return frozenset(name for name in found if name.startswith("kernl_trio"))


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0]


def test_product_code_never_imports_the_test_harness() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in names if "kernl_trio.testing" in n)
        for path in PACKAGE.rglob("*.py")
        if _layer(path) != "testing" and (names := _imports(path))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_command_line_imports_the_command_line() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if _layer(path) not in ("cli", "__main__.py")
        and any(n.startswith("kernl_trio.cli") for n in _imports(path))
    ]
    assert offenders == []


def test_the_pytest_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, kernl_trio.testing.pytest_plugin\n"
        "print(sorted(m for m in sys.modules if m.startswith(('kernl_trio', 'trio', 'numpy'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [
        "['kernl_trio',",
        "'kernl_trio._lazy',",
        "'kernl_trio.testing',",
        "'kernl_trio.testing.pytest_plugin']",
    ]


def test_public_names_still_load() -> None:
    for name in kernl_trio.__all__:
        assert getattr(kernl_trio, name) is not None
    for name in kernl_trio.testing.__all__:
        assert getattr(kernl_trio.testing, name) is not None
    assert kernl_trio.testing.ScriptedServer is kernl_trio.local.ScriptedServer
    from kernl_trio.testing.embedded import EmbeddedServer
    from kernl_trio.testing.rules import RuleScript

    assert EmbeddedServer is kernl_trio.local.EmbeddedServer
    assert RuleScript is kernl_trio.local.RuleScript
    assert kernl_trio.session.open_session is kernl_trio.open_session  # submodules too
    assert "RealtimeAgent" in dir(kernl_trio)
