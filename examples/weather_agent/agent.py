"""A weather assistant: one agent, one tool, one slow service behind it.

The tool reaches the service through the session's context (``Context[WeatherService]``), so a
test hands the agent a service whose latency it controls and watches what happens to a lookup
when the user interrupts.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from kernl_trio.agent import RealtimeAgent
from kernl_trio.context import Context
from kernl_trio.tools import tool


@attrs.define
class WeatherService:
    """Stands in for a real weather API: answers after ``latency`` seconds (of trio time)."""

    latency: float = 2.0
    forecasts: dict[str, dict[str, Any]] = attrs.field(
        factory=lambda: {"paris": {"temp_c": 18, "conditions": "cloudy"}}
    )
    lookups: list[str] = attrs.field(factory=list)
    cancelled: list[str] = attrs.field(factory=list)

    async def current(self, city: str) -> dict[str, Any]:
        self.lookups.append(city)
        try:
            await trio.sleep(self.latency)  # the network round trip
        except trio.Cancelled:
            self.cancelled.append(city)  # e.g. abort the HTTP request, release a connection
            raise
        forecast = self.forecasts.get(city.lower(), {"temp_c": 20, "conditions": "clear"})
        return {"city": city, **forecast}


@tool
async def get_weather(context: Context[WeatherService], city: str) -> dict[str, Any]:
    """Get the current weather in a city.

    Args:
        city: The city's name, e.g. Paris.
    """
    return await context.data.current(city)


weather_agent = RealtimeAgent(
    "weather",
    name="Weather assistant",
    instructions=(
        "You are a weather assistant on a voice call. When asked about the weather, say you "
        "are checking, call get_weather, then answer in one short sentence."
    ),
    tools=[get_weather],
)
