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
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio
import trio_websocket

from ..._errors import collapse
from ..._net import check_port, ws_url
from ..._websocket import WebSocket
from ..._wsserver import HttpRequest, ServerWebSocket, WebSocketServer
from ...context import Context
from ...errors import ConfigurationError, ConnectionLost, KernlTrioError
from ...model import RealtimeModel
from ...session import RealtimeSession, open_session
from ._channel import TwilioChannel, TwilioChannelStatistics, TwilioOptions
from ._wire import StartInfo

if TYPE_CHECKING:
    from ...agent import RealtimeAgent

__all__ = [
    "HEALTH_PATH",
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
    """A finished call. ``outcome`` is ``"failed"`` when an exception ended it (``error``);
    ``reason`` says how it ended, in words (``"stop"``: Twilio's stop message)."""

    call_sid: str | None
    stream_sid: str | None
    custom_parameters: dict[str, str]
    started_at: float
    ended_at: float
    outcome: Literal["completed", "failed"]
    error: BaseException | None
    statistics: TwilioChannelStatistics
    reason: str = ""

    @property
    def duration(self) -> float:
        return self.ended_at - self.started_at


@attrs.frozen
class TwilioServerStatistics:
    active: int
    started: int
    completed: int
    failed: int
    refused: int
    draining: bool = False


async def handle_twilio_call(
    ws: WebSocket | trio_websocket.WebSocketConnection | TwilioChannel,
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


HEALTH_PATH = "/healthz"
"""A plain ``GET`` here answers 200 ``ok`` (503 ``draining`` once draining) for load balancers."""

_NORMAL_CLOSE_CODES = frozenset({None, 1000, 1001, 1005, 1006})


class TwilioServer:
    """A running :func:`serve_twilio`: its ``port``, live ``calls`` and ``statistics()``.

    :meth:`drain` stops it gracefully; :meth:`hang_up_all` ends every call now.
    """

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
        reuse_port: bool = False,
        max_message_size: int = 2**16,
        idle_timeout: float = 30.0,
    ) -> None:
        if auth_token is not None and not public_url:
            raise ConfigurationError(
                "checking X-Twilio-Signature needs public_url, the scheme and host Twilio "
                "connects to (e.g. wss://abc.ngrok.app)"
            )
        self.agent = agent
        self.model = model
        self.host = host
        self.port = check_port(port)
        self.public_url = public_url.rstrip("/") if public_url else None
        self._auth_token = auth_token
        self._context_factory = context_factory
        self._on_call = on_call
        self.options = options
        self._start_timeout = start_timeout
        self._reuse_port = reuse_port
        self.calls: dict[str, TwilioCall] = {}
        """Live calls by stream SID."""
        self.history: collections.deque[TwilioCallRecord] = collections.deque(maxlen=history)
        """The most recent finished calls, oldest first."""
        self._started = self._completed = self._failed = self._refused = 0
        self._channels: set[TwilioChannel] = set()  # every stream, before and after start
        self._changed = trio.lowlevel.ParkingLot()  # a stream ended
        self.draining = False
        self._websockets = WebSocketServer(
            self._serve_call,
            gate=self._gate,
            max_message_size=max_message_size,
            idle_timeout=idle_timeout,
        )

    @property
    def url(self) -> str:
        """``ws://host:port`` (an IPv6 host in brackets)."""
        return ws_url(self.host, self.port)

    def statistics(self) -> TwilioServerStatistics:
        return TwilioServerStatistics(
            sum(1 for channel in self._channels if channel.start is not None),
            self._started,
            self._completed,
            self._failed,
            self._refused,
            self.draining,
        )

    async def run(
        self, *, task_status: trio.TaskStatus[TwilioServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled, or until :meth:`drain` has ended every call."""
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(self._websockets.serve, self.host, self.port, reuse_port=self._reuse_port)
            )
            self.port = self._websockets.port
            logger.info("Twilio Media Streams server on %s", self.url)
            task_status.started(self)

    async def drain(self, grace: float = 30.0) -> None:
        """Stop accepting calls, let the calls in progress finish for up to ``grace`` seconds,
        then end the rest as a hang-up from this side (each session closes as usual).

        Returns once every call has ended; :meth:`run` then returns too. The listening
        socket closes at the start of the drain, so a load balancer's health check fails
        (refused; ``/healthz`` answers 503 on a connection made before) and it stops
        sending calls.
        """
        if not self.draining:
            self.draining = True
            self._websockets.stop_accepting()
            logger.info(
                "draining: no new calls; %d in progress get up to %g s to finish",
                len(self._channels),
                grace,
            )
        with trio.move_on_after(grace):
            while self._channels:
                await self._changed.park()
        if self._channels:
            logger.info("drain: grace period over; ending %d calls", len(self._channels))
        await self.hang_up_all()

    async def hang_up_all(self) -> None:
        """End every call now: close each stream (its session then closes as usual)."""
        async with trio.open_nursery() as nursery:
            for channel in list(self._channels):
                nursery.start_soon(channel.aclose)
        while self._channels:
            await self._changed.park()
        await trio.lowlevel.checkpoint()

    def _gate(self, request: HttpRequest) -> tuple[int, str] | None:
        """Answers plain HTTP (the health check) and refuses bad signatures before upgrading."""
        if not request.upgrade:
            if request.path.partition("?")[0] == HEALTH_PATH:
                return (503, "draining\n") if self.draining else (200, "ok\n")
            return None
        if self.draining:
            return 503, "draining: not taking new calls\n"
        if not self._signature_ok(request):
            self._refused += 1
            logger.warning(
                "refused a Twilio stream from %s: bad or missing X-Twilio-Signature",
                request.remote,
            )
            return 403, "invalid X-Twilio-Signature\n"
        return None

    def _signature_ok(self, request: HttpRequest) -> bool:
        if self._auth_token is None:
            return True
        signature = request.header("X-Twilio-Signature")
        url = f"{self.public_url}{request.path}"
        return validate_twilio_signature(self._auth_token, url, signature)

    async def _serve_call(self, ws: ServerWebSocket) -> None:  # noqa: ASYNC910 - handle_twilio_call checkpoints, raising too
        channel = TwilioChannel(ws, self.options)
        started_at = trio.current_time()
        self._channels.add(channel)
        error: BaseException | None = None

        def register(call: TwilioCall) -> None:
            self._started += 1
            if call.stream_sid in self.calls:  # Twilio's SIDs are unique: a replay, or a bug
                logger.warning(
                    "call started with stream_sid=%s, which a live call already has; "
                    "server.calls lists the newer one",
                    call.stream_sid,
                )
            self.calls[call.stream_sid] = call
            logger.info(
                "call started: call_sid=%s stream_sid=%s from %s",
                call.call_sid,
                call.stream_sid,
                ws.request.remote,
                extra={
                    "event": "call.started",
                    "call_sid": call.call_sid,
                    "stream_sid": call.stream_sid,
                    "remote": ws.request.remote,
                    "path": ws.request.path,
                },
            )

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
        finally:
            self._channels.discard(channel)
            self._changed.unpark_all()
            live = self.calls.get(channel.stream_sid or "")
            if live is not None and live.channel is channel:  # not another stream's, same SID
                del self.calls[live.stream_sid]
            self._record(channel, ws, started_at, error)

    def _record(
        self,
        channel: TwilioChannel,
        ws: ServerWebSocket,
        started_at: float,
        error: BaseException | None,
    ) -> None:
        ended_at = trio.current_time()
        if channel.start is None:
            # A scanner, a health probe, a misconfigured <Stream>: not a call, one warning.
            if isinstance(error, trio.TooSlowError):
                why = f"no start message within {self._start_timeout:g} s"
            elif error is not None and not channel.ended:
                why = f"{type(error).__name__}: {error}"
            else:
                why = "the stream ended before its start message"
            malformed = channel.statistics().malformed
            if malformed:
                s = "s" if malformed > 1 else ""
                why += f" ({malformed} malformed message{s}, the first: {channel.first_malformed})"
            logger.warning(
                "not a call: a stream from %s (%s): %s",
                ws.request.remote,
                ws.request.path,
                why,
                extra={"event": "stream.refused", "remote": ws.request.remote, "reason": why},
            )
            self._refused += 1
            self.history.append(
                TwilioCallRecord(
                    None,
                    None,
                    {},
                    started_at,
                    ended_at,
                    "failed",
                    error,
                    channel.statistics(),
                    f"not a call: {why}",
                )
            )
            return
        code = channel.close_code
        if error is None and code not in _NORMAL_CLOSE_CODES:
            error = ConnectionLost(
                f"the Twilio stream closed with code {code}"
                + (f": {channel.close_reason}" if channel.close_reason else ""),
                code=code,
                reason=channel.close_reason,
            )
        if error is not None:
            reason = f"{type(error).__name__}: {error}"
        elif channel.end_reason == "stop":
            reason = "stop"
        elif code is None or channel.closed_here:
            reason = "hung up by the bridge"
        else:
            detail = f" {channel.close_reason}" if channel.close_reason else ""
            reason = f"closed by Twilio ({code}{detail})"
        outcome: Literal["completed", "failed"] = "failed" if error is not None else "completed"
        if error is None:
            self._completed += 1
        else:
            self._failed += 1
        record = TwilioCallRecord(
            channel.call_sid,
            channel.stream_sid,
            channel.custom_parameters,
            started_at,
            ended_at,
            outcome,
            error,
            channel.statistics(),
            reason,
        )
        self.history.append(record)
        log = logger.error if error is not None else logger.info
        log(
            "call ended: call_sid=%s stream_sid=%s duration=%.1fs outcome=%s reason=%s",
            record.call_sid,
            record.stream_sid,
            record.duration,
            outcome,
            reason,
            extra={
                "event": "call.ended",
                "call_sid": record.call_sid,
                "stream_sid": record.stream_sid,
                "duration_s": round(record.duration, 3),
                "outcome": outcome,
                "reason": reason,
            },
            # a bug in the application (not the network) gets its traceback
            exc_info=error if _is_bug(error) else None,
        )


def _is_bug(error: BaseException | None) -> bool:
    return error is not None and not isinstance(error, KernlTrioError | OSError | trio.TooSlowError)


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
    reuse_port: bool = False,
    idle_timeout: float = 30.0,
    task_status: trio.TaskStatus[TwilioServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve Twilio Media Streams: ``server = await nursery.start(serve_twilio, agent, ...)``.

    ``model`` defaults to the agent's own (or OpenAI's). ``port=0`` binds a free port
    (``server.port``); ``reuse_port`` lets other processes serve the same port
    (``SO_REUSEPORT``, see ``kernl-trio twilio --workers``). ``auth_token`` (with
    ``public_url``, e.g. ``wss://abc.ngrok.app``) turns on X-Twilio-Signature checks.
    ``context_factory(start)`` builds each call's :class:`~kernl_trio.Context` from Twilio's
    ``start`` (custom parameters, call SID). ``on_call(call)`` runs beside each call's
    session. ``options`` configures every call's channel (by default the model hears and
    speaks u-law: no transcoding). A stream that sends nothing for ``idle_timeout`` seconds
    (Twilio sends media every 20 ms, silence included) is a peer that vanished: its call
    ends. A plain ``GET /healthz`` answers ``ok``. Runs until cancelled, or until
    ``server.drain()`` has ended every call.
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
        reuse_port=reuse_port,
        idle_timeout=idle_timeout,
    )
    await server.run(task_status=task_status)
