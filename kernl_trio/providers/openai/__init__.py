"""OpenAI Realtime API (GA) provider."""

from .codec import OpenAICodec
from .connection import OpenAIRealtimeConnection
from .model import OpenAIRealtimeModel

__all__ = ["OpenAICodec", "OpenAIRealtimeConnection", "OpenAIRealtimeModel"]
