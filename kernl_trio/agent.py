"""The agent: who the model should be in a session, and which tools it may call."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .context import Context
from .errors import ConfigurationError
from .protocol.config import SessionConfig
from .tools import Tool, Toolkit

if TYPE_CHECKING:
    from .model import RealtimeModel

__all__ = ["Instructions", "RealtimeAgent"]

Instructions = str | Callable[[Context[Any]], str | Awaitable[str]]
"""A fixed prompt, or a callable (sync or async) that builds it from the session's context."""


def _tool_tuple(tools: Sequence[Tool]) -> tuple[Tool, ...]:
    return tuple(tools)


def _toolkit_tuple(toolkits: Sequence[Toolkit]) -> tuple[Toolkit, ...]:
    return tuple(toolkits)


@attrs.frozen(eq=False)
class RealtimeAgent:
    """A realtime voice agent: its instructions, tools, voice and (optionally) model.

    Everything but ``id`` is keyword-only::

        agent = RealtimeAgent(
            "support",
            name="Support",
            instructions=lambda ctx: f"Help {ctx.data.customer_name}.",
            tools=[lookup_order],
            toolkits=[Crm(client)],
            voice="marin",
        )

    Tool names must be unique across ``tools`` and every toolkit: a clash raises
    :class:`~kernl_trio.ConfigurationError` here, at construction. ``instructions`` may be a
    callable taking the session's :class:`~kernl_trio.Context`; a sync callable runs in the
    session's task, so it must not block (do slow work in an async one).
    """

    id: str
    name: str = attrs.field(kw_only=True)
    instructions: Instructions = attrs.field(kw_only=True)
    tools: tuple[Tool, ...] = attrs.field(default=(), kw_only=True, converter=_tool_tuple)
    toolkits: tuple[Toolkit, ...] = attrs.field(default=(), kw_only=True, converter=_toolkit_tuple)
    model: RealtimeModel | None = attrs.field(default=None, kw_only=True)
    voice: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not self.id:
            raise ConfigurationError("an agent needs a non-empty id")
        if not (isinstance(self.instructions, str) or callable(self.instructions)):
            raise ConfigurationError(
                f"agent {self.id!r}: instructions must be a str or a callable, "
                f"got {type(self.instructions).__name__}"
            )
        self.all_tools()

    def all_tools(self) -> dict[str, Tool]:
        """Every tool of the agent by name: its own ``tools`` first, then each toolkit's.

        Raises :class:`~kernl_trio.ConfigurationError` when two tools share a name (the
        message lists each duplicate and where its copies come from) or when a tool is an
        unbound method (read from a class instead of an instance).
        """
        sources: dict[str, list[str]] = {}
        found: dict[str, Tool] = {}
        entries = [(t, f"tools[{i}]") for i, t in enumerate(self.tools)]
        entries += [(t, f"toolkit {kit.name!r}") for kit in self.toolkits for t in kit]
        for tool, source in entries:
            if not isinstance(tool, Tool):
                raise ConfigurationError(
                    f"agent {self.id!r}: {source} holds {tool!r}, not a Tool (decorate it "
                    "with @tool)"
                )
            if tool.is_method:
                raise ConfigurationError(
                    f"agent {self.id!r}: tool {tool.name!r} from {source} is an unbound "
                    "method; take it from an instance of its class"
                )
            sources.setdefault(tool.name, []).append(source)
            found.setdefault(tool.name, tool)
        clashes = {name: where for name, where in sources.items() if len(where) > 1}
        if clashes:
            detail = "; ".join(f"{name!r} from {', '.join(w)}" for name, w in clashes.items())
            raise ConfigurationError(f"agent {self.id!r} has duplicate tool names: {detail}")
        return found

    async def resolve_instructions(self, context: Context[Any]) -> str:
        """The instructions for this session: the string, or what the callable returns."""
        await trio.lowlevel.checkpoint()
        if isinstance(self.instructions, str):
            return self.instructions
        result = self.instructions(context)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, str):
            raise ConfigurationError(
                f"agent {self.id!r}: the instructions callable returned "
                f"{type(result).__name__}, not str"
            )
        return result

    async def session_config(self, context: Context[Any]) -> SessionConfig:
        """The session configuration this agent asks for.

        ``tools`` is always set (``()`` for an agent without tools), so switching to this
        agent in a running session also removes the previous agent's tools; ``tool_choice``
        is ``"auto"`` when there are tools; ``voice`` only when the agent names one.
        """
        tools = tuple(t.definition for t in self.all_tools().values())
        return SessionConfig(
            instructions=await self.resolve_instructions(context),
            tools=tools,
            tool_choice="auto" if tools else None,
            voice=self.voice,
        )
