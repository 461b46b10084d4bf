"""``serve_twilio``: a Media Streams WebSocket server where every call is one session.

Twilio opens one WebSocket per call (TwiML ``<Connect><Stream url="wss://...">``). Each
accepted socket becomes a :class:`TwilioChannel` and one ``open_session(agent, ...)`` in the
server's nursery. A call that fails (any exception: the model unreachable, a tool bug that
escapes, a broken socket) is logged and recorded, and never disturbs another call. Twilio's
``stop``, or the socket closing, ends that call's session, which cancels its tools.

With ``auth_token`` the upgrade request's ``X-Twilio-Signature`` is checked (Twilio's scheme:
base64 HMAC-SHA1, keyed by the account's auth token, of the URL Twilio connected to) and a
missing or wrong signature is refused with HTTP 403.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import inspect
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import attrs
import trio
import trio_websocket

from .._errors import collapse
from ..context import Context
from ..errors import ConfigurationError
from ..model import RealtimeModel
from ..session import RealtimeSession, open_session
from ._twilio_channel import TwilioChannel, TwilioChannelStatistics, TwilioOptions
from ._twilio_wire import StartInfo

if TYPE_CHECKING:
    from ..agent import RealtimeAgent

__all__ = [
    "ContextFactory",
    "TwilioCall",
    "TwilioCallRecord",
    "TwilioServer",
    "TwilioServerStatistics",
    "handle_twilio_call",
    "serve_twilio",
    "twilio_signature",
    "validate_twilio_signature",
]

logger = logging.getLogger("kernl_trio.channels.twilio")

ContextFactory = Callable[[StartInfo], "Context[Any] | Awaitable[Context[Any]]"]
"""Builds a call's session context from Twilio's ``start`` (sync or async)."""

OnCall = Callable[["TwilioCall"], Awaitable[None]]
"""Runs beside a call's session (e.g. to read its DTMF); cancelled when the call ends."""

_DEFAULT_PORTS = {"wss": 443, "https": 443, "ws": 80, "http": 80}


# -- signatures ------------------------------------------------------------------------------
def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Twilio's request signature: base64(HMAC-SHA1(auth_token, url + sorted params)).

    WebSocket upgrades (Media Streams) have no parameters: the URL (with its query) is all
    that is signed. ``params`` serves form-encoded webhooks (each name then value, sorted).
    """
    data = url + "".join(f"{k}{v}" for k, v in sorted((params or {}).items()))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def validate_twilio_signature(
    auth_token: str,
    url: str,
    signature: str | bytes | None,
    params: Mapping[str, str] | None = None,
) -> bool:
    """Whether ``signature`` is Twilio's for ``url``, compared in constant time.

    As Twilio's own helper libraries do, the URL is also tried with its scheme's default
    port added or removed (proxies disagree on whether ``:443`` is part of it).
    """
    if not signature:
        return False
    given = signature.encode() if isinstance(signature, str) else signature
    ok = False
    for candidate in _url_variants(url):
        expected = twilio_signature(auth_token, candidate, params).encode()
        ok |= hmac.compare_digest(expected, given)
    return ok


def _url_variants(url: str) -> list[str]:
    parts = urllib.parse.urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or parts.hostname is None:
        return [url]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if parts.port is None:
        other = parts._replace(netloc=f"{prefix}{host}:{default}")
    elif parts.port == default:
        other = parts._replace(netloc=f"{prefix}{host}")
    else:
        return [url]
    return [url, urllib.parse.urlunsplit(other)]


# -- calls -----------------------------------------------------------------------------------
@attrs.define(eq=False)
class TwilioCall:
    """A live call: its channel, Twilio's ``start``, and (once open) its session."""

    channel: TwilioChannel
    start: StartInfo
    started_at: float
    session: RealtimeSession | None = None

    @property
    def call_sid(self) -> str:
        return self.start.call_sid

    @property
    def stream_sid(self) -> str:
        return self.start.stream_sid


@attrs.frozen
class TwilioCallRecord:
    """A finished call. ``outcome`` is ``"failed"`` when an exception ended it (``error``)."""

    call_sid: str | None
    stream_sid: str | None
    custom_parameters: dict[str, str]
    started_at: float
    ended_at: float
    outcome: Literal["completed", "failed"]
    error: BaseException | None
    statistics: TwilioChannelStatistics


@attrs.frozen
class TwilioServerStatistics:
    active: int
    started: int
    completed: int
    failed: int
    refused: int


async def handle_twilio_call(
    ws: trio_websocket.WebSocketConnection | TwilioChannel,
    agent: RealtimeAgent,
    *,
    model: RealtimeModel | None = None,
    context_factory: ContextFactory | None = None,
    on_call: OnCall | None = None,
    options: TwilioOptions | None = None,
    start_timeout: float = 10.0,
    on_start: Callable[[TwilioCall], None] | None = None,
) -> None:
    """Serve one accepted Twilio socket until the call ends: the channel, and one session.

    For servers other than :func:`serve_twilio` (accept the WebSocket, then await this).
    Returns when Twilio sends ``stop`` or the socket closes; errors propagate as single
    exceptions (``TooSlowError`` when no ``start`` arrives within ``start_timeout`` s).
    """
    channel = ws if isinstance(ws, TwilioChannel) else TwilioChannel(ws, options)
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(start_timeout):
                start: StartInfo = await nursery.start(channel.run)
            call = TwilioCall(channel, start, trio.current_time())
            if on_start is not None:
                on_start(call)
            context = None
            if context_factory is not None:
                made = context_factory(start)
                context = await made if inspect.isawaitable(made) else made
            async with open_session(
                agent, model=model, channel=channel, context=context
            ) as session:
                call.session = session
                async with trio.open_nursery() as hooks:
                    if on_call is not None:
                        hooks.start_soon(on_call, call)
                    await channel.wait_ended()
                    hooks.cancel_scope.cancel()
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise collapse(group) from None


class TwilioServer:
    """A running :func:`serve_twilio`: its ``port``, live ``calls`` and ``statistics()``."""

    def __init__(
        self,
        agent: RealtimeAgent,
        *,
        model: RealtimeModel | None,
        host: str,
        port: int,
        auth_token: str | None,
        public_url: str | None,
        context_factory: ContextFactory | None,
        on_call: OnCall | None,
        options: TwilioOptions,
        start_timeout: float,
        history: int,
    ) -> None:
        if auth_token is not None and not public_url:
            raise ConfigurationError(
                "checking X-Twilio-Signature needs public_url, the scheme and host Twilio "
                "connects to (e.g. wss://abc.ngrok.app)"
            )
        self.agent = agent
        self.model = model
        self.host = host
        self.port = port
        self.public_url = public_url.rstrip("/") if public_url else None
        self._auth_token = auth_token
        self._context_factory = context_factory
        self._on_call = on_call
        self.options = options
        self._start_timeout = start_timeout
        self.calls: dict[str, TwilioCall] = {}
        """Live calls by stream SID."""
        self.history: collections.deque[TwilioCallRecord] = collections.deque(maxlen=history)
        """The most recent finished calls, oldest first."""
        self._started = self._completed = self._failed = self._refused = 0

    def statistics(self) -> TwilioServerStatistics:
        return TwilioServerStatistics(
            len(self.calls), self._started, self._completed, self._failed, self._refused
        )

    async def run(
        self, *, task_status: trio.TaskStatus[TwilioServer] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                trio_websocket.serve_websocket,
                self._handle,
                self.host,
                self.port,
                None,
            )
            self.port = server.port
            logger.info("Twilio Media Streams server on ws://%s:%d", self.host, self.port)
            task_status.started(self)
            await trio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _handle(self, request: trio_websocket.WebSocketRequest) -> None:
        try:
            if not self._signature_ok(request):
                self._refused += 1
                logger.warning(
                    "refused a Twilio stream from %s: bad or missing X-Twilio-Signature",
                    request.remote,
                )
                await request.reject(403, body=b"invalid X-Twilio-Signature\n")
                return
            ws = await request.accept()
        except (trio_websocket.ConnectionClosed, trio.BrokenResourceError, OSError):
            return
        await self._serve_call(ws)

    def _signature_ok(self, request: trio_websocket.WebSocketRequest) -> bool:
        if self._auth_token is None:
            return True
        signature = next(
            (v for k, v in request.headers if k.lower() == b"x-twilio-signature"), None
        )
        url = f"{self.public_url}{request.path}"
        return validate_twilio_signature(self._auth_token, url, signature)

    async def _serve_call(self, ws: trio_websocket.WebSocketConnection) -> None:
        channel = TwilioChannel(ws, self.options)
        started_at = trio.current_time()
        self._started += 1
        error: BaseException | None = None

        def register(call: TwilioCall) -> None:
            self.calls[call.stream_sid] = call

        try:
            await handle_twilio_call(
                channel,
                self.agent,
                model=self.model,
                context_factory=self._context_factory,
                on_call=self._on_call,
                options=self.options,
                start_timeout=self._start_timeout,
                on_start=register,
            )
        except Exception as exc:  # one call's failure is that call's alone
            error = exc
            logger.error("Twilio call %s failed: %r", channel.call_sid, exc, exc_info=exc)
        finally:
            if channel.stream_sid is not None:
                self.calls.pop(channel.stream_sid, None)
            if error is None:
                self._completed += 1
            else:
                self._failed += 1
            self.history.append(
                TwilioCallRecord(
                    channel.call_sid,
                    channel.stream_sid,
                    channel.custom_parameters,
                    started_at,
                    trio.current_time(),
                    "failed" if error is not None else "completed",
                    error,
                    channel.statistics(),
                )
            )


async def serve_twilio(
    agent: RealtimeAgent,
    *,
    model: RealtimeModel | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    auth_token: str | None = None,
    public_url: str | None = None,
    context_factory: ContextFactory | None = None,
    on_call: OnCall | None = None,
    options: TwilioOptions | None = None,
    start_timeout: float = 10.0,
    history: int = 1000,
    task_status: trio.TaskStatus[TwilioServer] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve Twilio Media Streams: ``server = await nursery.start(serve_twilio, agent, ...)``.

    ``model`` defaults to the agent's own (or OpenAI's). ``port=0`` binds a free port
    (``server.port``). ``auth_token`` (with ``public_url``, e.g. ``wss://abc.ngrok.app``)
    turns on X-Twilio-Signature checks. ``context_factory(start)`` builds each call's
    :class:`~kernl_trio.Context` from Twilio's ``start`` (custom parameters, call SID).
    ``on_call(call)`` runs beside each call's session. ``options`` configures every call's
    channel (by default the model hears and speaks u-law: no transcoding). Runs until
    cancelled.
    """
    server = TwilioServer(
        agent,
        model=model,
        host=host,
        port=port,
        auth_token=auth_token,
        public_url=public_url,
        context_factory=context_factory,
        on_call=on_call,
        options=options or TwilioOptions(),
        start_timeout=start_timeout,
        history=history,
    )
    await server.run(task_status=task_status)
