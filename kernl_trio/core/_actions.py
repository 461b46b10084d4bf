"""What the conversation core asks its driver to do.

The core never does I/O: every input returns a list of these, in the order the driver must
carry them out. All of them are synchronous for the driver (queue a frame, publish an event,
start or cancel a task), so one input is handled in one scheduler pass.
"""

from __future__ import annotations

import attrs

from ..protocol import AudioOutputDelta, ClientEvent, RealtimeError, ServerEvent


@attrs.frozen
class ToolOutput:
    """A tool call settled and its output went to the model."""

    kind = "tool.output"
    call_id: str
    name: str
    output: str
    error: bool = False


CoreEvent = ServerEvent | ToolOutput
"""What the core publishes; the session adds its own ``StatusChanged``."""


@attrs.frozen(slots=True)
class Send:
    """Queue ``event`` for the wire, after everything queued before it."""

    event: ClientEvent


@attrs.frozen(slots=True)
class Publish:
    """Hand ``event`` to every subscriber."""

    event: CoreEvent


@attrs.frozen(slots=True)
class StartTurn:
    """Open turn ``turn``'s cancel scope; it plays after turn ``previous`` has finished."""

    turn: int
    previous: int | None


@attrs.frozen(slots=True)
class Play:
    """Queue ``delta`` for playback in turn ``turn``."""

    turn: int
    delta: AudioOutputDelta


@attrs.frozen(slots=True)
class EndTurnAudio:
    """No more audio comes for ``turn``: play out what is queued, then report ``turn_done``.

    ``drain_until`` is set when the core keeps the playback clock itself (no channel): the
    turn has been heard at that time.
    """

    turn: int
    drain_until: float | None = None


@attrs.frozen(slots=True)
class CancelTurn:
    """Cancel ``turn``'s scope (its playback and cancellable calls) and flush the channel."""

    turn: int


@attrs.frozen(slots=True)
class StartTool:
    """Run the tool ``name`` for ``call_id``; report with ``tool_finished``.

    ``in_turn``: inside the turn's scope (an interruption cancels it); otherwise in the
    session's scope (only closing the session cancels it).
    """

    call_id: str
    name: str
    arguments: str
    turn: int
    in_turn: bool


@attrs.frozen(slots=True)
class CancelTool:
    """Cancel the call's task; its output has already been decided."""

    call_id: str


@attrs.frozen(slots=True)
class Configured:
    """The server confirmed the session's first configuration: the session is ready."""

    session_id: str | None


@attrs.frozen(slots=True)
class Rejected:
    """The server answered the first configuration with an error."""

    error: RealtimeError


Action = (
    Send
    | Publish
    | StartTurn
    | Play
    | EndTurnAudio
    | CancelTurn
    | StartTool
    | CancelTool
    | Configured
    | Rejected
)
