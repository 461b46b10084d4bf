"""Package attributes that import their module on first use (PEP 562 ``__getattr__``)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def load(package: str, exports: Mapping[str, str], name: str, namespace: dict[str, Any]) -> Any:
    """``package.name``: imported from ``exports[name]`` (a relative module), then cached in
    the package's ``namespace``; a submodule of that name otherwise."""
    module_name = exports.get(name)
    if module_name is None:
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name, package), name)
    namespace[name] = value
    return value
