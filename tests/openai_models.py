"""The official ``openai`` package's realtime models, loaded on first use.

Importing them (and building the pydantic validator of the client event union) takes most of
a second; at module level every pytest process would pay it while collecting, whether or not
it runs a test that validates against them.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

import pydantic


@cache
def client_adapter() -> pydantic.TypeAdapter[Any]:
    """A validator of ``openai.types.realtime.RealtimeClientEvent``."""
    from openai.types.realtime import RealtimeClientEvent

    return pydantic.TypeAdapter(RealtimeClientEvent)


def ga_server_types() -> set[str]:
    """The ``type`` of every server event ``openai.types.realtime`` knows."""
    from openai.types.realtime import RealtimeServerEvent

    (union,) = typing.get_args(RealtimeServerEvent)[:1]
    return {
        typing.get_args(cls.model_fields["type"].annotation)[0] for cls in typing.get_args(union)
    }


def assert_no_extras(value: Any) -> None:
    """No pydantic model in ``value`` kept a field its class does not declare."""
    if isinstance(value, pydantic.BaseModel):
        assert not value.model_extra, f"{type(value).__name__} got unknown {value.model_extra}"
        for name in type(value).model_fields:
            assert_no_extras(getattr(value, name))
    elif isinstance(value, list | tuple):
        for v in value:
            assert_no_extras(v)
