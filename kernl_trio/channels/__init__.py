"""Audio channels: where the user's microphone and speaker meet a session.

- :class:`VirtualChannel`: paced by trio's clock, for tests and demos.
- :class:`WavChannel`: WAV files in and out, any rate (resampled).
- :class:`TwilioChannel` / :func:`serve_twilio`: phone calls over Twilio Media Streams.
- :class:`LocalDeviceChannel`: microphone and speaker (optional extra ``device``).
- :mod:`kernl_trio.channels.browser`: a web page and its WebSocket, one session per tab
  (``kernl-trio web``; imported on its own, it brings in hypercorn).
"""

# Names load on first use (PEP 562): `channels.wav` alone does not import the Twilio bridge or
# numpy (the device channel).
from typing import TYPE_CHECKING, Any

from .._lazy import load

if TYPE_CHECKING:
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

_EXPORTS = {
    "DeviceChannelStatistics": ".device",
    "LocalDeviceChannel": ".device",
    "PlayedChunk": ".virtual",
    "StartInfo": ".twilio",
    "TwilioCall": ".twilio",
    "TwilioCallRecord": ".twilio",
    "TwilioChannel": ".twilio",
    "TwilioChannelStatistics": ".twilio",
    "TwilioDtmf": ".twilio",
    "TwilioEvent": ".twilio",
    "TwilioMalformed": ".twilio",
    "TwilioMarkEcho": ".twilio",
    "TwilioOptions": ".twilio",
    "TwilioServer": ".twilio",
    "TwilioServerStatistics": ".twilio",
    "TwilioStopped": ".twilio",
    "VirtualChannel": ".virtual",
    "WavChannel": ".wav",
    "handle_twilio_call": ".twilio",
    "serve_twilio": ".twilio",
    "twilio_signature": ".twilio",
    "validate_twilio_signature": ".twilio",
}


def __getattr__(name: str) -> Any:
    return load(__name__, _EXPORTS, name, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


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
