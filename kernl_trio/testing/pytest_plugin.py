"""pytest fixtures for voice agents: a realtime server, a model pointed at it, a channel.

Installed with kernl_trio as the pytest plugin ``kernl_trio`` (a ``pytest11`` entry point), so
the fixtures are there in any project that has kernl_trio and pytest-trio installed. They are
trio fixtures: use them from trio tests (``trio_mode = true``, or ``@pytest.mark.trio``), and
add pytest-trio's ``autojump_clock`` to run every sleep and every second of audio in virtual
time::

    @pytest.fixture
    def realtime_replies():
        return [Reply.of(AudioReply("It is sunny.", ms=2000))]

    async def test_answer(realtime_model, virtual_channel, autojump_clock):
        async with open_session(agent, model=realtime_model, channel=virtual_channel) as session:
            await session.send_message("Weather?")
            ...

* ``realtime_replies``: what the server answers; override it (a list of
  :class:`~kernl_trio.testing.Reply`, a responder function, or a
  :class:`~kernl_trio.testing.rules.RuleScript`). Default: the embedded server's echo script.
* ``realtime_transcripts``: what the user's committed audio utterances say, in order; override.
* ``realtime_server``: an :class:`~kernl_trio.testing.embedded.EmbeddedServer` with those
  replies and transcripts, listening on 127.0.0.1 in the test's nursery.
* ``realtime_model``: an :class:`~kernl_trio.providers.openai.OpenAIRealtimeModel` at it.
* ``virtual_channel``: a fresh :class:`~kernl_trio.testing.VirtualChannel`.
* ``start_realtime_server``: a factory for more servers, or other kinds, in one test
  (``await start_realtime_server(replies, transcripts=...)``,
  ``await start_realtime_server.scripted(replies)`` for a plain ScriptedServer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import pytest

# Every pytest run where kernl_trio is installed imports this module: it imports only pytest,
# and each fixture imports what it needs when a test uses it.
if TYPE_CHECKING:
    import trio

    from ..channels.virtual import VirtualChannel
    from ..local.embedded import EmbeddedServer, Transcriber
    from ..local.replies import Reply, Responder
    from ..local.server import ScriptedServer
    from ..providers.openai import OpenAIRealtimeModel

Replies: TypeAlias = "Responder | Sequence[Reply]"


class RealtimeServerFactory:
    """Starts servers in the test's nursery; they stop when the test ends."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.servers: list[ScriptedServer] = []

    async def __call__(
        self,
        replies: Replies | None = None,
        *,
        transcripts: Sequence[str] | Transcriber = (),
        session: dict[str, Any] | None = None,
        speech_start_ms: int = 100,
        threshold_dbfs: float | None = None,
    ) -> EmbeddedServer:
        """An :class:`EmbeddedServer` (server VAD, transcripts, scripted replies)."""
        from ..local.embedded import EmbeddedServer

        server = EmbeddedServer(
            replies,
            transcripts=transcripts,
            session=session,
            speech_start_ms=speech_start_ms,
            threshold_dbfs=threshold_dbfs,
        )
        started: EmbeddedServer = await self._nursery.start(server.run)
        self.servers.append(started)
        return started

    async def scripted(
        self, replies: Replies | None = None, *, session: dict[str, Any] | None = None
    ) -> ScriptedServer:
        """A plain :class:`ScriptedServer`: no turn detection, every event driven by the test."""
        from ..local.replies import default_responder
        from ..local.server import ScriptedServer

        if replies is None:
            replies = default_responder
        started: ScriptedServer = await self._nursery.start(
            ScriptedServer(replies, session=session).run
        )
        self.servers.append(started)
        return started


@pytest.fixture
def realtime_replies() -> Replies | None:
    """What ``realtime_server`` answers. Override it; ``None`` is the echo script."""
    return None


@pytest.fixture
def realtime_transcripts() -> Sequence[str] | Transcriber:
    """The texts of the user's committed audio utterances, in order. Override it."""
    return ()


@pytest.fixture
def start_realtime_server(nursery: trio.Nursery) -> RealtimeServerFactory:
    """A factory starting realtime servers in the test's nursery."""
    return RealtimeServerFactory(nursery)


@pytest.fixture
async def realtime_server(
    start_realtime_server: RealtimeServerFactory,
    realtime_replies: Replies | None,
    realtime_transcripts: Sequence[str] | Transcriber,
) -> EmbeddedServer:
    """An embedded realtime server on 127.0.0.1 for this test."""
    return await start_realtime_server(realtime_replies, transcripts=realtime_transcripts)


@pytest.fixture
def realtime_model(realtime_server: EmbeddedServer) -> OpenAIRealtimeModel:
    """An OpenAI realtime model pointed at ``realtime_server`` (no key needed)."""
    from ..providers.openai import OpenAIRealtimeModel

    return OpenAIRealtimeModel("gpt-realtime", base_url=realtime_server.url)


@pytest.fixture
def virtual_channel() -> VirtualChannel:
    """A channel whose speaker plays, and whose microphone speaks, in trio time."""
    from ..channels.virtual import VirtualChannel

    return VirtualChannel()


__all__ = [
    "RealtimeServerFactory",
    "Replies",
    "realtime_model",
    "realtime_replies",
    "realtime_server",
    "realtime_transcripts",
    "start_realtime_server",
    "virtual_channel",
]
