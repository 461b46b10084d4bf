"""Talk to an agent from a web page (docs/channels.md, "Browser").

:func:`serve_browser` serves a small page (plain HTML, JavaScript and AudioWorklets, shipped in
the package) and its WebSocket on hypercorn; each tab is one session. The page captures the
microphone, plays the agent's audio from a ring buffer and reports back what it has played,
so a barge-in truncates at what was heard. :class:`BrowserChannel` is one tab's socket as a
:class:`~kernl_trio.model.RealtimeChannel`. ``kernl-trio web`` runs it (:mod:`.cli`).
"""

from ._channel import (
    BrowserChannel,
    BrowserChannelStatistics,
    BrowserCleared,
    BrowserClosed,
    BrowserDisconnected,
    BrowserEvent,
    BrowserMalformed,
    BrowserOptions,
    BrowserPlayed,
    BrowserSocket,
)
from ._server import (
    BrowserServer,
    BrowserServerStatistics,
    BrowserTab,
    BrowserTabRecord,
    display_message,
    handle_browser_tab,
    serve_browser,
    static_files,
)

__all__ = [
    "BrowserChannel",
    "BrowserChannelStatistics",
    "BrowserCleared",
    "BrowserClosed",
    "BrowserDisconnected",
    "BrowserEvent",
    "BrowserMalformed",
    "BrowserOptions",
    "BrowserPlayed",
    "BrowserServer",
    "BrowserServerStatistics",
    "BrowserSocket",
    "BrowserTab",
    "BrowserTabRecord",
    "display_message",
    "handle_browser_tab",
    "serve_browser",
    "static_files",
]
