"""A secret string whose ``repr`` and ``str`` never show it."""

from __future__ import annotations

__all__ = ["Secret", "reveal"]


class Secret:
    """Holds an API key or an ``Authorization`` header value.

    ``repr()``, ``str()`` and formatting print ``Secret('<redacted>')``, so a secret held in
    a local, an attribute or a header list stays out of logs, exception messages and
    tracebacks that capture locals. :meth:`reveal` returns the value; call it only where
    the bytes go onto the wire.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value: str = value.reveal() if isinstance(value, Secret) else value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('<redacted>')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Secret is not pickled")


def reveal(value: str | Secret) -> str:
    """``value`` itself, or the secret's value."""
    return value.reveal() if isinstance(value, Secret) else value
