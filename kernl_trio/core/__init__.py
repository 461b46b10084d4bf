"""The conversation core: the session's rules as a pure state machine.

``Conversation`` takes inputs (decoded server events, interrupts, tool results, the
application's tool outputs, playback reports, connection changes; each with the time passed
in) and returns :mod:`actions <kernl_trio.core>` for a driver to carry out. No trio, no
sockets, no clock reads: ``RealtimeSession`` is its trio driver, and its tests run in memory.
"""

from ._actions import (
    Action,
    CancelTool,
    CancelTurn,
    Configured,
    CoreEvent,
    EndTurnAudio,
    Play,
    Publish,
    Rejected,
    Send,
    StartTool,
    StartTurn,
    ToolOutput,
)
from ._conversation import (
    CANCELLED_OUTPUT,
    DISCONNECTED_OUTPUT,
    ChannelPlayback,
    Conversation,
    CoreStatistics,
    InterruptSource,
    PlaybackView,
    ToolPolicy,
    client_events,
    error_output,
)
from ._history import audio_cut, counter_ids, history_changes, new_item_id
from ._timeline import AssumedTimeline

__all__ = [
    "CANCELLED_OUTPUT",
    "DISCONNECTED_OUTPUT",
    "Action",
    "AssumedTimeline",
    "CancelTool",
    "CancelTurn",
    "ChannelPlayback",
    "Configured",
    "Conversation",
    "CoreEvent",
    "CoreStatistics",
    "EndTurnAudio",
    "InterruptSource",
    "Play",
    "PlaybackView",
    "Publish",
    "Rejected",
    "Send",
    "StartTool",
    "StartTurn",
    "ToolOutput",
    "ToolPolicy",
    "audio_cut",
    "client_events",
    "counter_ids",
    "error_output",
    "history_changes",
    "new_item_id",
]
