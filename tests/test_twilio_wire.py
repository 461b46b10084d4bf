"""The Twilio Media Streams codec: protocols.md D.6's frames in, D.3's frames out."""

from __future__ import annotations

import orjson
import pytest

from kernl_trio.channels.twilio._wire import (
    Clear,
    Connected,
    Dtmf,
    Mark,
    MarkInfo,
    Media,
    OutboundMedia,
    OutboundPayload,
    Start,
    Stop,
    decode,
    encode,
)
from kernl_trio.errors import FrameDecodeError

SID = "MZfedcba9876543210fedcba9876543210"
SILENCE_B64 = "/" * 213 + "w=="  # 160 bytes of 0xFF

# protocols.md D.6, Twilio -> bridge
CONNECTED = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
START = (
    '{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC0123456789abcdef0123456789ab'
    'cdef","streamSid":"MZfedcba9876543210fedcba9876543210","callSid":"CA00112233445566778899aabbc'
    'cddeeff","tracks":["inbound"],"customParameters":{"caller":"+15551230000"},"mediaFormat":{"en'
    'coding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZfedcba9876543210fedcb'
    'a9876543210"}'
)
MEDIA = (
    '{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"5",'
    f'"payload":"{SILENCE_B64}"}},"streamSid":"{SID}"}}'
)
MARK = f'{{"event":"mark","sequenceNumber":"4","streamSid":"{SID}","mark":{{"name":"item_1:20"}}}}'
DTMF = (
    f'{{"event":"dtmf","streamSid":"{SID}","sequenceNumber":"5",'
    '"dtmf":{"track":"inbound_track","digit":"1"}}'
)
STOP = (
    f'{{"event":"stop","sequenceNumber":"6","streamSid":"{SID}","stop":{{"accountSid":'
    '"AC0123456789abcdef0123456789abcdef","callSid":"CA00112233445566778899aabbccddeeff"}}'
)


def test_decode_every_twilio_message() -> None:
    assert decode(CONNECTED) == Connected("Call", "1.0.0")
    start = decode(START)
    assert isinstance(start, Start)
    assert start.sequence_number == 1
    assert start.start.stream_sid == SID
    assert start.start.call_sid == "CA00112233445566778899aabbccddeeff"
    assert start.start.custom_parameters == {"caller": "+15551230000"}
    assert start.start.media_format.sample_rate == 8000
    assert start.start.tracks == ("inbound",)
    media = decode(MEDIA)
    assert isinstance(media, Media)
    assert media.media.payload == b"\xff" * 160
    assert (media.media.chunk, media.media.timestamp, media.media.track) == (1, 5, "inbound")
    mark = decode(MARK)
    assert isinstance(mark, Mark) and mark.mark.name == "item_1:20"
    dtmf = decode(DTMF)
    assert isinstance(dtmf, Dtmf) and dtmf.dtmf.digit == "1"
    stop = decode(STOP)
    assert isinstance(stop, Stop) and stop.stop.call_sid == "CA00112233445566778899aabbccddeeff"


def test_numeric_fields_accept_digit_strings_and_integers() -> None:
    raw = orjson.loads(MEDIA)
    raw["media"]["timestamp"] = 25
    media = decode(orjson.dumps(raw).decode())
    assert isinstance(media, Media) and media.media.timestamp == 25


def test_encode_outbound_messages_in_twilio_shapes() -> None:
    media = orjson.loads(encode(OutboundMedia(SID, OutboundPayload(b"\xff" * 160))))
    assert media == {"event": "media", "streamSid": SID, "media": {"payload": SILENCE_B64}}
    mark = orjson.loads(encode(Mark(MarkInfo("item_1:20"), stream_sid=SID)))
    assert mark == {"event": "mark", "streamSid": SID, "mark": {"name": "item_1:20"}}
    assert orjson.loads(encode(Clear(SID))) == {"event": "clear", "streamSid": SID}


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "not JSON"),
        (b"\x00\x01", "binary"),
        ("[1, 2]", "JSON object"),
        ('{"event": "hello"}', "unknown event 'hello'"),
        ('{"streamSid": "MZ"}', "unknown event None"),
        ('{"event": "media"}', "missing field 'media'"),
        ('{"event": "media", "media": {"track": "inbound"}}', "missing field 'payload'"),
        ('{"event": "media", "media": {"payload": 12}}', "expected base64 text"),
        ('{"event": "media", "media": {"payload": "%%%"}}', "invalid base64"),
        ('{"event": "media", "media": {"payload": "", "timestamp": "1.5"}}', "expected digits"),
        ('{"event": "start", "start": {"streamSid": "MZ"}}', "missing field 'callSid'"),
        ('{"event": "mark", "mark": {"name": 3}}', "expected a string"),
        ('{"event": "dtmf", "dtmf": {}}', "missing field 'digit'"),
    ],
)
def test_malformed_frames_raise_frame_decode_error_with_the_frame(
    frame: str | bytes, reason: str
) -> None:
    with pytest.raises(FrameDecodeError) as caught:
        decode(frame)
    assert reason in caught.value.reason
    assert caught.value.frame == frame
