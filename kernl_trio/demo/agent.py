"""The demo's agent: a weather assistant with one slow tool."""

from __future__ import annotations

from typing import Any

import trio

from ..agent import RealtimeAgent
from ..tools import tool

LOOKUP_SECONDS = 1.5
"""How long a weather lookup takes (in trio time): long enough to be interrupted."""

_FORECASTS: dict[str, dict[str, Any]] = {
    "paris": {
        "temp_c": 18,
        "conditions": "cloudy",
        "wind": "west",
        "later": "light rain after six",
        "advice": "take an umbrella if you go out tonight",
    },
    "rome": {
        "temp_c": 24,
        "conditions": "sunny",
        "wind": "south",
        "later": "a warm and clear evening",
        "advice": "sunglasses would be a good idea",
    },
}
_DEFAULT = {
    "temp_c": 20,
    "conditions": "clear",
    "wind": "north",
    "later": "more of the same",
    "advice": "enjoy your day",
}


@tool
async def get_weather(city: str) -> dict[str, Any]:
    """Get the current weather and today's forecast for a city.

    Args:
        city: The city, e.g. Paris.
    """
    await trio.sleep(LOOKUP_SECONDS)  # a slow weather service
    return {"city": city, **_FORECASTS.get(city.strip().lower(), _DEFAULT)}


INSTRUCTIONS = (
    "You are a friendly weather assistant on a voice call. Keep answers short. When the user "
    "asks about the weather somewhere, say that you are checking, call get_weather, then give "
    "the temperature, the conditions and one tip for the day."
)

weather_agent = RealtimeAgent(
    "weather",
    name="Weather assistant",
    instructions=INSTRUCTIONS,
    tools=[get_weather],
    voice="marin",
)

__all__ = ["INSTRUCTIONS", "LOOKUP_SECONDS", "get_weather", "weather_agent"]
