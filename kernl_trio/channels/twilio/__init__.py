"""Phone calls through Twilio Media Streams (protocols.md section D; docs/channels.md).

:func:`serve_twilio` runs a WebSocket server where each call is one session;
:class:`TwilioChannel` is one call's stream as a :class:`~kernl_trio.model.RealtimeChannel`;
:func:`handle_twilio_call` serves one accepted socket, for applications that run their own
server. ``kernl-trio twilio`` (:mod:`kernl_trio.cli.twilio`) runs the server from the
command line.

The package's layers: :mod:`._wire` (the messages), :mod:`._stream` (the pure stream state:
marks, clears, the played position), :mod:`._channel` (the channel's I/O) and
:mod:`._server` (the server, signatures, drain and health check).
"""

from ._channel import (
    TwilioChannel,
    TwilioChannelStatistics,
    TwilioDtmf,
    TwilioEvent,
    TwilioMalformed,
    TwilioMarkEcho,
    TwilioOptions,
    TwilioStopped,
)
from ._server import (
    HEALTH_PATH,
    ContextFactory,
    TwilioCall,
    TwilioCallRecord,
    TwilioServer,
    TwilioServerStatistics,
    handle_twilio_call,
    serve_twilio,
    twilio_signature,
    validate_twilio_signature,
)
from ._wire import MediaFormat, StartInfo

__all__ = [
    "HEALTH_PATH",
    "ContextFactory",
    "MediaFormat",
    "StartInfo",
    "TwilioCall",
    "TwilioCallRecord",
    "TwilioChannel",
    "TwilioChannelStatistics",
    "TwilioDtmf",
    "TwilioEvent",
    "TwilioMalformed",
    "TwilioMarkEcho",
    "TwilioOptions",
    "TwilioServer",
    "TwilioServerStatistics",
    "TwilioStopped",
    "handle_twilio_call",
    "serve_twilio",
    "twilio_signature",
    "validate_twilio_signature",
]
