"""Turning trio's exception groups from the library's own nurseries into one exception."""

from __future__ import annotations

import trio

from .errors import MultipleErrors


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def collapse(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The single exception a caller should see for ``group``.

    ``Cancelled`` leaves belong to the nursery's own teardown and are dropped, unless
    nothing else is left (then the cancellation is what propagates). KeyboardInterrupt wins.
    """
    leaves = _leaves(group)
    for leaf in leaves:
        if isinstance(leaf, KeyboardInterrupt):
            return leaf
    # One error object raised by several tasks (say, a lost connection seen by the reader
    # and by a sender) is one error.
    real = list(
        {id(leaf): leaf for leaf in leaves if not isinstance(leaf, trio.Cancelled)}.values()
    )
    if not real:
        return leaves[0]
    if len(real) == 1:
        return real[0]
    error = MultipleErrors(f"{len(real)} errors: " + "; ".join(repr(e) for e in real))
    error.__cause__ = group
    return error
