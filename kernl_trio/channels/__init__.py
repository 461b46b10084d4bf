"""Audio channels: where the user's microphone and speaker meet a session."""

from .virtual import PlayedChunk, VirtualChannel

__all__ = ["PlayedChunk", "VirtualChannel"]
