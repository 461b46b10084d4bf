"""The context a session hands to tools and to instructions callables."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

__all__ = ["Context"]

T = TypeVar("T")


@attrs.define(eq=False)
class Context(Generic[T]):
    """The application's state for one session, plus what the session records about itself.

    ``data`` is yours: whatever object your tools and instructions need (a database handle,
    the caller's account, a shopping cart). kernl_trio never reads or copies it. A tool
    receives the context when its first parameter is annotated ``Context`` or
    ``Context[YourData]``; an instructions callable always receives it.

    The other attributes are filled in by the session: ``session_id`` is the provider's id
    for the realtime session once the server has announced it (``None`` before that).

    Contexts compare by identity: one session, one context.
    """

    data: T
    session_id: str | None = attrs.field(default=None, kw_only=True)
