"""Write docs/api.md, the API reference, from the public modules' docstrings.

Run from the repository root after changing a public docstring or signature:

    python docs/gen_api.py            # rewrites docs/api.md
    python docs/gen_api.py --check    # exits 1 if docs/api.md is out of date

Every module below is documented with what it exports (``__all__``), in that order of
modules and alphabetical order of names: each name's signature (classes: their
constructor) and its docstring, as written.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

MODULES = [
    "kernl_trio",
    "kernl_trio.agent",
    "kernl_trio.tools",
    "kernl_trio.context",
    "kernl_trio.session",
    "kernl_trio.core",
    "kernl_trio.model",
    "kernl_trio.errors",
    "kernl_trio.limits",
    "kernl_trio.transports",
    "kernl_trio.providers.openai",
    "kernl_trio.channels",
    "kernl_trio.audio",
    "kernl_trio.protocol",
    "kernl_trio.testing",
]

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "api.md"
sys.path.insert(0, str(ROOT))  # this checkout's kernl_trio, whatever is installed


def _names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and getattr(value, "__module__", "") == module.__name__
        ]
    return sorted(names)


def _signature(name: str, value: Any) -> str:
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return name
    # postponed annotations are strings: show them as written, without quotes
    parameters = []
    for param in signature.parameters.values():
        if isinstance(param.annotation, str):
            param = param.replace(annotation=_AsWritten(param.annotation))
        if inspect.isfunction(param.default):  # by name: its repr has an address
            param = param.replace(default=_AsWritten(param.default.__name__))
        parameters.append(param)
    returns = signature.return_annotation
    if inspect.isclass(value):
        returns = inspect.Signature.empty
    elif isinstance(returns, str):
        returns = _AsWritten(returns)
    signature = signature.replace(parameters=parameters, return_annotation=returns)
    return f"{name}{signature}"


class _AsWritten:
    """An annotation string that shows as itself."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text


def _doc(value: Any) -> str:
    doc = inspect.getdoc(value)
    return doc.strip() if doc else ""


def render() -> str:
    out = [
        "# API reference",
        "",
        "Generated from the docstrings by `python docs/gen_api.py`; do not edit by hand.",
        "Where a name is exported by several modules it is described where it is defined",
        "and listed under the others.",
        "",
    ]
    described: dict[int, str] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        out += [f"## `{module_name}`", ""]
        if _doc(module):
            out += [_doc(module), ""]
        for name in _names(module):
            value = getattr(module, name)
            home = described.get(id(value))
            if home is not None and (inspect.isclass(value) or inspect.isfunction(value)):
                out += [f"- `{name}`: see `{home}`", ""]
                continue
            if inspect.isclass(value) or inspect.isfunction(value):
                described[id(value)] = f"{module_name}.{name}"
                kind = "class" if inspect.isclass(value) else "def"
                out += [f"### `{module_name}.{name}`", "", "```python"]
                out += [f"{kind} {_signature(name, value)}", "```", ""]
                if _doc(value):
                    out += [_doc(value), ""]
            else:
                out += [f"### `{module_name}.{name}`", "", f"`{name} = {value!r:.100}`", ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print("docs/api.md is out of date: run python docs/gen_api.py", file=sys.stderr)
            raise SystemExit(1)
        return
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text.splitlines())} lines)")


if __name__ == "__main__":
    main()
