"""RealtimeAgent: tools across toolkits, instructions, session config."""

from typing import Any

import attrs
import pytest
import trio

from kernl_trio.agent import RealtimeAgent
from kernl_trio.context import Context
from kernl_trio.errors import ConfigurationError
from kernl_trio.protocol.config import FunctionTool, SessionConfig
from kernl_trio.tools import Toolkit, tool


@tool
async def lookup(order_id: str) -> str:
    """Look up an order."""
    return order_id


@tool
def cancel(order_id: str) -> str:
    """Cancel an order."""
    return order_id


@tool
def refund(order_id: str, amount: float) -> str:
    """Refund an order."""
    return order_id


@tool(name="lookup")
def other_lookup(phone: str) -> str:
    return phone


class Crm(Toolkit):
    name = "crm"

    @tool
    async def find_customer(self, phone: str) -> str:
        """Find a customer."""
        return phone


@attrs.frozen
class Caller:
    name: str


def test_defaults_and_keyword_only_fields() -> None:
    agent = RealtimeAgent("support", name="Support", instructions="Be brief.")
    assert agent.id == "support"
    assert agent.name == "Support"
    assert agent.tools == ()
    assert agent.toolkits == ()
    assert agent.model is None
    assert agent.voice is None
    assert agent.all_tools() == {}
    with pytest.raises(TypeError):
        RealtimeAgent("support", "Support", "Be brief.")  # type: ignore[call-arg]


def test_all_tools_in_order_across_tools_and_toolkits() -> None:
    crm = Crm()
    agent = RealtimeAgent(
        "support",
        name="Support",
        instructions="",
        tools=[lookup, cancel],
        toolkits=[Toolkit("money", [refund]), crm],
    )
    assert agent.tools == (lookup, cancel)
    tools = agent.all_tools()
    assert list(tools) == ["lookup", "cancel", "refund", "find_customer"]
    assert tools["lookup"] is lookup
    assert tools["find_customer"] is crm.tools[0]


def test_duplicate_tool_names_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        RealtimeAgent(
            "support",
            name="Support",
            instructions="",
            tools=[lookup, cancel, cancel],
            toolkits=[Toolkit("search", [other_lookup]), Toolkit("more", [cancel])],
        )
    assert str(info.value) == (
        "agent 'support' has duplicate tool names: "
        "'lookup' from tools[0], toolkit 'search'; "
        "'cancel' from tools[1], tools[2], toolkit 'more'"
    )


def test_duplicates_are_also_reported_by_all_tools() -> None:
    kit = Toolkit("kit", [refund])
    agent = RealtimeAgent("a", name="A", instructions="", toolkits=[kit])
    kit._tools = (refund, refund)  # a toolkit changed after the agent was made
    with pytest.raises(ConfigurationError, match="'refund' from toolkit 'kit', toolkit 'kit'"):
        agent.all_tools()


def test_unbound_method_tool_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'find_customer' from tools\\[0\\] is an unbound"):
        RealtimeAgent("a", name="A", instructions="", tools=[Crm.find_customer])


def test_non_tool_is_a_configuration_error() -> None:
    def plain(x: int) -> int:
        return x

    with pytest.raises(ConfigurationError, match="decorate it with @tool"):
        RealtimeAgent("a", name="A", instructions="", tools=[plain])  # type: ignore[list-item]


def test_bad_id_or_instructions() -> None:
    with pytest.raises(ConfigurationError, match="non-empty id"):
        RealtimeAgent("", name="A", instructions="")
    with pytest.raises(ConfigurationError, match="must be a str or a callable, got int"):
        RealtimeAgent("a", name="A", instructions=3)  # type: ignore[arg-type]


async def test_instructions_as_a_string() -> None:
    agent = RealtimeAgent("a", name="A", instructions="Be brief.")
    assert await agent.resolve_instructions(Context(None)) == "Be brief."


async def test_instructions_from_a_sync_callable() -> None:
    seen: list[Context[Any]] = []

    def build(context: Context[Any]) -> str:
        seen.append(context)
        return f"Greet {context.data.name}."

    agent = RealtimeAgent("a", name="A", instructions=build)
    context = Context(Caller("Ada"))
    assert await agent.resolve_instructions(context) == "Greet Ada."
    assert seen == [context]


async def test_instructions_from_an_async_callable(autojump_clock: trio.abc.Clock) -> None:
    async def build(context: Context[Any]) -> str:
        await trio.sleep(0.25)  # e.g. a database lookup
        return f"Greet {context.data.name}."

    agent = RealtimeAgent("a", name="A", instructions=build)
    assert await agent.resolve_instructions(Context(Caller("Ada"))) == "Greet Ada."
    assert trio.current_time() == 0.25


async def test_instructions_callable_must_return_a_string() -> None:
    agent = RealtimeAgent("a", name="A", instructions=lambda context: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="returned NoneType, not str"):
        await agent.resolve_instructions(Context(None))


async def test_session_config_with_tools() -> None:
    agent = RealtimeAgent(
        "support",
        name="Support",
        instructions=lambda context: f"Help {context.data.name}.",
        tools=[lookup],
        toolkits=[Crm()],
        voice="marin",
    )
    config = await agent.session_config(Context(Caller("Ada")))
    assert config == SessionConfig(
        instructions="Help Ada.",
        tools=(
            FunctionTool(
                "lookup",
                "Look up an order.",
                {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                    "additionalProperties": False,
                },
            ),
            FunctionTool(
                "find_customer",
                "Find a customer.",
                {
                    "type": "object",
                    "properties": {"phone": {"type": "string"}},
                    "required": ["phone"],
                    "additionalProperties": False,
                },
            ),
        ),
        tool_choice="auto",
        voice="marin",
    )


async def test_session_config_without_tools() -> None:
    agent = RealtimeAgent("quiet", name="Quiet", instructions="Listen.")
    config = await agent.session_config(Context(None))
    assert config == SessionConfig(instructions="Listen.", tools=(), tool_choice=None, voice=None)


def test_agent_is_frozen() -> None:
    agent = RealtimeAgent("a", name="A", instructions="")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        agent.voice = "marin"  # type: ignore[misc]
