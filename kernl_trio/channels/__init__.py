"""Audio channels: where the user's microphone and speaker meet a session.

- :class:`VirtualChannel`: paced by trio's clock, for tests and demos.
- :class:`WavChannel`: WAV files in and out, any rate (resampled).
- :class:`TwilioChannel` / :func:`serve_twilio`: phone calls over Twilio Media Streams.
- :class:`LocalDeviceChannel`: microphone and speaker (optional extra ``device``).
- :mod:`kernl_trio.channels.browser`: a web page and its WebSocket, one session per tab
  (``kernl-trio web``; imported on its own, it brings in hypercorn).
"""

from .device import DeviceChannelStatistics, LocalDeviceChannel
from .twilio import (
    StartInfo,
    TwilioCall,
    TwilioCallRecord,
    TwilioChannel,
    TwilioChannelStatistics,
    TwilioDtmf,
    TwilioEvent,
    TwilioMalformed,
    TwilioMarkEcho,
    TwilioOptions,
    TwilioServer,
    TwilioServerStatistics,
    TwilioStopped,
    handle_twilio_call,
    serve_twilio,
    twilio_signature,
    validate_twilio_signature,
)
from .virtual import PlayedChunk, VirtualChannel
from .wav import WavChannel

__all__ = [
    "DeviceChannelStatistics",
    "LocalDeviceChannel",
    "PlayedChunk",
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
    "VirtualChannel",
    "WavChannel",
    "handle_twilio_call",
    "serve_twilio",
    "twilio_signature",
    "validate_twilio_signature",
]
