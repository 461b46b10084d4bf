"""The public surface, pinned: what each public module exports (after trio's test_exports).

A change here is a change of the API: make it on purpose, with docs and a CHANGELOG line.
``python -m tests.test_exports`` prints the current exports in the form of ``PUBLIC``.
"""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import pprint
import types

import pytest

import kernl_trio

PUBLIC: dict[str, list[str]] = {
    "kernl_trio": [
        "AssumedPlayback",
        "CallAlreadyAnswered",
        "ChannelAudio",
        "ChannelCommit",
        "ChannelInput",
        "ChannelInterrupt",
        "ConfigurationError",
        "ConnectOptions",
        "ConnectionClosed",
        "ConnectionLost",
        "Context",
        "EncodeError",
        "FrameDecodeError",
        "HandshakeFailed",
        "KernlTrioError",
        "MultipleErrors",
        "RealtimeAgent",
        "RealtimeChannel",
        "RealtimeConnection",
        "RealtimeModel",
        "RealtimeSession",
        "RealtimeTransport",
        "SessionEvent",
        "SessionRejected",
        "SessionStatistics",
        "StatusChanged",
        "SubscriberOverflow",
        "SubscriberStatistics",
        "Subscription",
        "Tool",
        "ToolArgumentsError",
        "ToolError",
        "ToolOutput",
        "Toolkit",
        "TransportError",
        "open_session",
        "tool",
    ],
    "kernl_trio.agent": [
        "Instructions",
        "RealtimeAgent",
    ],
    "kernl_trio.audio": [
        "Transcoder",
        "TranscoderStatistics",
        "bytes_for_ms",
        "duration_ms",
        "pcm16_silence",
        "rms_dbfs",
        "silence",
        "tone",
    ],
    "kernl_trio.channels": [
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
    ],
    "kernl_trio.context": [
        "Context",
    ],
    "kernl_trio.core": [
        "Action",
        "AssumedTimeline",
        "CANCELLED_OUTPUT",
        "CancelTool",
        "CancelTurn",
        "ChannelPlayback",
        "Configured",
        "Conversation",
        "CoreEvent",
        "CoreStatistics",
        "DISCONNECTED_OUTPUT",
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
    ],
    "kernl_trio.errors": [
        "ConfigurationError",
        "ConnectionClosed",
        "ConnectionLost",
        "EncodeError",
        "FrameDecodeError",
        "HandshakeFailed",
        "KernlTrioError",
        "MultipleErrors",
        "TransportError",
    ],
    "kernl_trio.limits": [
        "CLOSE_TIMEOUT",
        "DEFAULT_CONNECT_TIMEOUT",
        "DEFAULT_MAX_MESSAGE_SIZE",
        "HANDSHAKE_BODY_CHARS",
        "HTTP_TIMEOUT",
        "MAX_AUDIO_APPEND_BYTES",
        "PING_INTERVAL",
        "PING_TIMEOUT",
        "RECEIVE_BYTES",
        "RECEIVE_QUEUE",
        "SEND_QUEUE",
        "SEND_STALL_TIMEOUT",
        "WATCHDOG_TICK",
    ],
    "kernl_trio.model": [
        "ChannelAudio",
        "ChannelCommit",
        "ChannelInterrupt",
        "ConnectOptions",
        "RealtimeChannel",
        "RealtimeConnection",
        "RealtimeModel",
        "RealtimeTransport",
        "StatusChanged",
    ],
    "kernl_trio.protocol": [
        "ActivityEnd",
        "ActivityStart",
        "ApiKey",
        "AudioEncoding",
        "AudioFormat",
        "AudioInputAppend",
        "AudioInputClear",
        "AudioInputCleared",
        "AudioInputCommit",
        "AudioInputCommitted",
        "AudioOutputDelta",
        "AudioOutputDone",
        "CLIENT_EVENT_TYPES",
        "ClientCredential",
        "ClientEvent",
        "ContentPart",
        "EphemeralToken",
        "FunctionTool",
        "InputAudio",
        "InputImage",
        "InputText",
        "InvalidFrame",
        "Item",
        "ItemCreate",
        "ItemCreated",
        "ItemDelete",
        "ItemDeleted",
        "ItemStatus",
        "ItemTruncate",
        "ItemTruncated",
        "ManualTurns",
        "MessageItem",
        "Modality",
        "NEUTRAL_SERVER_EVENT_TYPES",
        "OutputAudio",
        "OutputText",
        "PCM16_24K",
        "PCMA_8K",
        "PCMU_8K",
        "ProviderEvent",
        "ProviderItem",
        "RealtimeError",
        "ResponseCancel",
        "ResponseConfig",
        "ResponseCreate",
        "ResponseCreated",
        "ResponseDone",
        "ResponseInterrupted",
        "ResponseStatus",
        "Role",
        "SemanticVAD",
        "ServerEvent",
        "ServerVAD",
        "SessionConfig",
        "SessionCreated",
        "SessionError",
        "SessionInfo",
        "SessionUpdate",
        "SessionUpdated",
        "SpeechStarted",
        "SpeechStopped",
        "TextOutput",
        "TextOutputDelta",
        "ToolCall",
        "ToolCallItem",
        "ToolCancelled",
        "ToolChoice",
        "ToolChoiceFunction",
        "ToolDelta",
        "ToolResult",
        "ToolResultItem",
        "ToolStart",
        "TranscriptInput",
        "TranscriptInputDelta",
        "TranscriptOutput",
        "TranscriptOutputDelta",
        "Transcription",
        "TransportStatus",
        "TurnDetection",
        "Usage",
        "user_text",
    ],
    "kernl_trio.providers.openai": [
        "OpenAICodec",
        "OpenAIRealtimeConnection",
        "OpenAIRealtimeModel",
    ],
    "kernl_trio.session": [
        "CLOSE_GRACE",
        "ConfigurationError",
        "MICROPHONE_BACKLOG",
        "RealtimeSession",
        "SessionEvent",
        "SessionRejected",
        "SessionStatistics",
        "Subscription",
        "ToolOutput",
        "history_changes",
        "open_session",
    ],
    "kernl_trio.testing": [
        "AudioReply",
        "PeerMark",
        "PlayedChunk",
        "Reply",
        "Responder",
        "ResponseRequest",
        "ScriptedServer",
        "ServerConnection",
        "TextReply",
        "ToolCallReply",
        "TwilioPeer",
        "VirtualChannel",
        "default_responder",
    ],
    "kernl_trio.tools": [
        "Tool",
        "ToolArgumentsError",
        "ToolDefinitionError",
        "ToolError",
        "ToolResultError",
        "Toolkit",
        "tool",
    ],
    "kernl_trio.transports": [
        "DEFAULT_CONNECTOR",
        "Header",
        "Secret",
        "WebSocket",
        "WebSocketClosed",
        "WebSocketConnector",
        "connect_trio_websocket",
        "connect_websockets_sansio",
    ],
}


def exports(module: types.ModuleType) -> list[str]:
    """``__all__``, or else the public names the module itself defines."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and not isinstance(value, types.ModuleType)
            and getattr(value, "__module__", module.__name__) == module.__name__
            and (inspect.isclass(value) or inspect.isfunction(value))
        ]
    return sorted(names)


def current() -> dict[str, list[str]]:
    return {name: exports(importlib.import_module(name)) for name in PUBLIC}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exports_are_pinned(module_name: str) -> None:
    assert exports(importlib.import_module(module_name)) == PUBLIC[module_name]


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_every_export_resolves_and_is_public(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in exports(module):
        assert not name.startswith("_"), f"{module_name}.{name}"
        assert hasattr(module, name), f"{module_name}.{name} is in __all__ but missing"


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("MultipleErrors", "kernl_trio.errors"),
        ("MultipleErrors", "kernl_trio"),
        ("SessionStatistics", "kernl_trio"),
        ("SubscriberStatistics", "kernl_trio"),
        ("AssumedPlayback", "kernl_trio"),
        ("connect_websockets_sansio", "kernl_trio.transports"),
        ("connect_trio_websocket", "kernl_trio.transports"),
        ("DEFAULT_CONNECTOR", "kernl_trio.transports"),
        ("WebSocketClosed", "kernl_trio.transports"),
        ("Secret", "kernl_trio.transports"),
        ("TranscoderStatistics", "kernl_trio.audio"),
        ("Conversation", "kernl_trio.core"),
        ("SubscriberOverflow", "kernl_trio"),
        ("Subscription", "kernl_trio"),
        ("SessionRejected", "kernl_trio"),
        ("CallAlreadyAnswered", "kernl_trio"),
    ],
)
def test_types_a_user_meets_have_a_public_home(name: str, home: str) -> None:
    assert name in exports(importlib.import_module(home))


def test_the_default_connector_is_the_models_default() -> None:
    from kernl_trio.providers.openai import OpenAIRealtimeModel
    from kernl_trio.transports import DEFAULT_CONNECTOR

    default = inspect.signature(OpenAIRealtimeModel).parameters["connector"].default
    assert default is DEFAULT_CONNECTOR


def test_the_top_level_package_is_typed() -> None:
    assert kernl_trio.__file__ is not None
    assert importlib.resources.files("kernl_trio").joinpath("py.typed").is_file()


if __name__ == "__main__":
    pprint.pprint(current(), width=100, compact=True, sort_dicts=True)
