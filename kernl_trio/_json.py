"""Strict checks of JSON values, shared by the wire converters and the tool schema code.

JSON has one number type, and Python's ``bool`` is an ``int``: each check says exactly which
decoded JSON values stand for a field of a Python type (a ``true`` is never an integer, a
number never a string), so the provider wire and the tool arguments agree on what is valid.
A value that does not fit raises :class:`JsonTypeError`, a ``TypeError`` that names what
was expected and the JSON type that came. Each check takes (and ignores) a second argument,
so it registers as a cattrs structure hook as it is: the wire's per-field cost stays one call.
"""

from __future__ import annotations

from types import NoneType
from typing import Any

__all__ = [
    "JsonTypeError",
    "check_array",
    "check_bool",
    "check_int",
    "check_number",
    "check_object",
    "check_str",
    "json_type_name",
]

_JSON_NAMES: dict[type, str] = {
    NoneType: "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def json_type_name(value: object) -> str:
    """The JSON name of ``value``'s type, for error messages."""
    return _JSON_NAMES.get(type(value), type(value).__name__)


class JsonTypeError(TypeError):
    """A JSON value of the wrong type: ``expected`` says what fits, ``value`` is what came."""

    def __init__(self, expected: str, value: object) -> None:
        super().__init__(f"expected {expected}, got {json_type_name(value)}")
        self.expected = expected
        self.value = value


def check_str(value: Any, _: Any = None) -> str:
    if isinstance(value, str):
        return value
    raise JsonTypeError("a string", value)


def check_int(value: Any, _: Any = None, *, integral_floats: bool = False) -> int:
    """An integer; ``integral_floats`` also takes ``3.0`` (some encoders write any number
    as a float), never ``3.5`` nor ``true``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if integral_floats and isinstance(value, float) and value.is_integer():
        return int(value)
    raise JsonTypeError("an integer", value)


def check_number(value: Any, _: Any = None) -> float:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    raise JsonTypeError("a number", value)


def check_bool(value: Any, _: Any = None) -> bool:
    if isinstance(value, bool):
        return value
    raise JsonTypeError("a boolean", value)


def check_object(value: Any, _: Any = None) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise JsonTypeError("an object", value)


def check_array(value: Any, _: Any = None) -> list[Any]:
    if isinstance(value, list):
        return value
    raise JsonTypeError("an array", value)
