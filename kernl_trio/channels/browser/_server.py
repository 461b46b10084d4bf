"""``serve_browser``: the page and its WebSocket, one session per tab, on hypercorn.

An ASGI application served by hypercorn's trio worker: ``GET /`` and the page's static files
(from the package), and the WebSocket at ``/ws``. Each accepted socket becomes a
:class:`~kernl_trio.channels.browser.BrowserChannel` and one ``open_session(agent, ...)``;
closing the tab (or the socket dropping) ends that session, which cancels its tools. A tab
that fails (the model unreachable, a tool bug that escapes) is logged and recorded and never
disturbs another tab.

Before a socket is accepted: the ``Origin`` must be the server's own (or one of
``allowed_origins``), the ``token`` query parameter must match when a token is set (compared in
constant time), and no more than ``max_sessions`` tabs may be live; otherwise the upgrade gets
HTTP 403, 401 or 503 and never reaches a session.
"""

from __future__ import annotations

import collections
import hmac
import importlib.resources
import inspect
import itertools
import logging
import mimetypes
import secrets
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio import serve as hypercorn_serve

from ..._errors import collapse
from ...context import Context
from ...errors import KernlTrioError
from ...model import RealtimeModel, StatusChanged
from ...protocol import (
    ResponseInterrupted,
    SessionConfig,
    SessionError,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolCancelled,
    TranscriptInput,
    TranscriptInputDelta,
    TranscriptOutput,
    TranscriptOutputDelta,
)
from ...session import RealtimeSession, SessionEvent, ToolOutput, open_session
from ._channel import (
    CLOSE_GOING_AWAY,
    BrowserChannel,
    BrowserChannelStatistics,
    BrowserDisconnected,
    BrowserOptions,
)

if TYPE_CHECKING:
    from ...agent import RealtimeAgent

__all__ = [
    "BrowserServer",
    "BrowserServerStatistics",
    "BrowserTab",
    "BrowserTabRecord",
    "display_message",
    "handle_browser_tab",
    "ready_message",
    "serve_browser",
    "static_files",
]

logger = logging.getLogger("kernl_trio.channels.browser")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

ContextFactory = Callable[["BrowserTab"], "Context[Any] | Awaitable[Context[Any]]"]
"""Builds a tab's session context (sync or async), e.g. from ``tab.query``."""

OnTab = Callable[["BrowserTab"], Awaitable[None]]
"""Runs beside a tab's session; cancelled when the tab goes."""

_SECURITY_HEADERS = [
    (b"cache-control", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        b"frame-ancestors 'none'",
    ),
    (b"permissions-policy", b"microphone=(self)"),
]


def static_files() -> dict[str, bytes]:
    """The page's files, by name, as shipped in the package (``static/``)."""
    root = importlib.resources.files(__package__ or "kernl_trio.channels.browser") / "static"
    return {
        entry.name: entry.read_bytes()
        for entry in root.iterdir()
        if entry.is_file() and not entry.name.startswith(".")
    }


class _Config(Config):
    """hypercorn's configuration, listening on one socket that this server owns: hypercorn's
    own ``create_sockets`` leaves a socket open when ``bind`` fails (a port in use, a host that
    does not resolve), and nothing closes the listening socket if serving fails later."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self._host, self._port = host, port
        self._sockets: list[socket.socket] = []

    def create_sockets(self) -> Sockets:
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
        self._sockets.append(sock)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        sock.setblocking(False)
        if self.ssl_enabled:
            return Sockets([sock], [], [])
        return Sockets([], [sock], [])

    def close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()


class _AsgiSocket:
    """An ASGI WebSocket as a :class:`~kernl_trio.channels.browser.BrowserSocket`."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._closed: BrowserDisconnected | None = None

    async def receive(self) -> str | bytes:
        if self._closed is not None:
            await trio.lowlevel.checkpoint()
            raise self._closed
        message = await self._receive()
        kind = message.get("type")
        if kind == "websocket.receive":
            data = message.get("bytes")
            if data is not None:
                return bytes(data)
            text = message.get("text")
            return text if isinstance(text, str) else ""
        self._closed = BrowserDisconnected(int(message.get("code", 1006)), "")
        raise self._closed

    async def send(self, message: str | bytes) -> None:
        if self._closed is not None:
            await trio.lowlevel.checkpoint()
            raise self._closed
        if isinstance(message, bytes):
            await self._send({"type": "websocket.send", "bytes": message})
        else:
            await self._send({"type": "websocket.send", "text": message})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed is not None:
            await trio.lowlevel.checkpoint()
            return
        self._closed = BrowserDisconnected(code, reason)
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


@attrs.define(eq=False)
class BrowserTab:
    """A live tab: its channel, where it came from, and (once open) its session."""

    id: str
    channel: BrowserChannel
    client: str | None
    origin: str | None
    query: dict[str, str]
    headers: dict[str, str]
    started_at: float
    resume_key: str = attrs.field(default="", repr=False)
    session: RealtimeSession | None = None


@attrs.frozen
class BrowserTabRecord:
    """A finished tab. ``outcome`` is ``"failed"`` when an exception ended it (``error``)."""

    id: str
    session_id: str | None
    client: str | None
    started_at: float
    ended_at: float
    outcome: Literal["completed", "failed"]
    error: BaseException | None
    close_code: int | None
    statistics: BrowserChannelStatistics


@attrs.frozen
class BrowserServerStatistics:
    active: int
    started: int
    completed: int
    failed: int
    refused: int


class BrowserServer:
    """A running :func:`serve_browser`: ``port``, ``url``, live ``tabs``, ``history``."""

    def __init__(
        self,
        agent: RealtimeAgent,
        *,
        model: RealtimeModel | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        allowed_origins: Sequence[str] | None = None,
        session_config: SessionConfig | None = None,
        context_factory: ContextFactory | None = None,
        on_tab: OnTab | None = None,
        options: BrowserOptions | None = None,
        max_sessions: int = 100,
        notice: str | None = None,
        history: int = 1000,
        certfile: str | None = None,
        keyfile: str | None = None,
    ) -> None:
        self.agent = agent
        self.model = model
        self.host = host
        self.port = port
        self._token = token
        self.allowed_origins = tuple(allowed_origins) if allowed_origins is not None else None
        self.session_config = session_config
        self._context_factory = context_factory
        self._on_tab = on_tab
        self.options = options or BrowserOptions()
        self.max_sessions = max_sessions
        self.notice = notice
        self._certfile = certfile
        self._keyfile = keyfile
        self.files = static_files()
        self.tabs: dict[str, BrowserTab] = {}
        """Live tabs by id."""
        self.history: collections.deque[BrowserTabRecord] = collections.deque(maxlen=history)
        """The most recent finished tabs, oldest first."""
        self._ids = itertools.count(1)
        self._started = self._completed = self._failed = self._refused = 0
        self._stop = trio.Event()
        self._stopped = trio.Event()
        self._idle = trio.Event()
        self._idle.set()

    @property
    def url(self) -> str:
        """The page's URL (with the token, if one is set)."""
        scheme = "https" if self._certfile else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?{urllib.parse.urlencode({'token': self._token})}" if self._token else ""
        return f"{scheme}://{host}:{self.port}/{query}"

    def statistics(self) -> BrowserServerStatistics:
        return BrowserServerStatistics(
            len(self.tabs), self._started, self._completed, self._failed, self._refused
        )

    # -- running ---------------------------------------------------------------------------------
    async def run(
        self, *, task_status: trio.TaskStatus[BrowserServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled or :meth:`shutdown`; ``task_status.started(self)`` once
        the port is bound."""
        config = _Config(self.host, self.port)
        config.accesslog = None
        config.errorlog = logging.getLogger("kernl_trio.channels.browser.http")
        config.include_server_header = False
        config.graceful_timeout = 2.0
        # hypercorn drops frames past twice the channel's limits itself (with 1009); the
        # channel checks its own limits first, and records them
        config.websocket_max_message_size = 2 * max(
            self.options.max_frame_bytes, self.options.max_text_bytes
        )
        if self._certfile:
            config.certfile = self._certfile
            config.keyfile = self._keyfile
        try:
            async with trio.open_nursery() as nursery:
                binds: list[str] = await nursery.start(
                    lambda task_status: hypercorn_serve(
                        self.app,  # type: ignore[arg-type]
                        config,
                        shutdown_trigger=self._stopped.wait,
                        mode="asgi",
                        task_status=task_status,
                    )
                )
                self.port = int(binds[0].rsplit(":", 1)[1])
                logger.info("browser channel: serving %s", self.url)
                task_status.started(self)
                await self._stop.wait()
                await self._close_tabs()
                self._stopped.set()
        except BaseExceptionGroup as group:
            raise collapse(group) from None
        finally:
            config.close_sockets()

    async def shutdown(self) -> None:
        """Close every tab's socket (1001), end their sessions, stop serving; returns once
        the server has stopped (tabs get ``graceful`` seconds, 5 by default)."""
        self._stop.set()
        await self._stopped.wait()

    async def _close_tabs(self, graceful: float = 5.0) -> None:
        for tab in list(self.tabs.values()):
            tab.channel.send_json({"type": "closing", "reason": "server shutting down"})
        with trio.move_on_after(graceful):
            for tab in list(self.tabs.values()):
                await tab.channel.aclose_with(CLOSE_GOING_AWAY, "server shutting down")
            await self._idle.wait()

    # -- ASGI ------------------------------------------------------------------------------------
    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI application (mountable in another ASGI server)."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        else:  # a scope type this app does not serve
            await trio.lowlevel.checkpoint()

    async def _http(self, scope: Scope, send: Send) -> None:
        method = scope.get("method", "GET")
        path = scope.get("path", "/")
        name = "index.html" if path in ("/", "/index.html") else path.lstrip("/")
        body = self.files.get(name) if "/" not in name else None
        if method not in ("GET", "HEAD"):
            status, body, ctype = 405, b"method not allowed\n", "text/plain"
        elif body is None:
            status, body, ctype = 404, b"not found\n", "text/plain"
        else:
            status = 200
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if name.endswith(".js"):
                ctype = "text/javascript"
        headers = [
            (b"content-type", f"{ctype}; charset=utf-8".encode()),
            (b"content-length", str(len(body)).encode()),
            *_SECURITY_HEADERS,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    def _refusal(self, scope: Scope, resuming: bool) -> tuple[int, str] | None:
        headers = _headers(scope)
        origin = headers.get("origin")
        if not self._origin_ok(origin, headers.get("host")):
            return 403, f"origin {origin!r} not allowed"
        if self._token is not None:
            query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            given = query.get("token", "").encode()
            if not hmac.compare_digest(given, self._token.encode()):
                return 401, "missing or wrong token"
        if len(self.tabs) >= self.max_sessions and not resuming:
            return 503, "too many sessions"
        if self._stop.is_set():
            return 503, "shutting down"
        return None

    def _origin_ok(self, origin: str | None, host: str | None) -> bool:
        allowed = self.allowed_origins
        if allowed is not None and ("*" in allowed or (origin is not None and origin in allowed)):
            return True
        if origin is None or host is None:
            return False
        parts = urllib.parse.urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("path") != "/ws":
            await send({"type": "websocket.close", "code": 1008})
            return
        message = await receive()
        if message.get("type") != "websocket.connect":
            return
        query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        resuming = self._resumable(query.pop("resume", ""))
        refusal = self._refusal(scope, resuming is not None)
        if refusal is not None:
            status, reason = refusal
            self._refused += 1
            logger.warning("browser channel: refused a socket from %s: %s", _client(scope), reason)
            if "websocket.http.response" in scope.get("extensions", {}):
                body = f"{reason}\n".encode()
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "websocket.http.response.body", "body": body})
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        headers = _headers(scope)
        query.pop("token", None)
        await send({"type": "websocket.accept"})
        socket = _AsgiSocket(receive, send)
        if resuming is not None:
            greeting = self._ready(resuming, resumed=True)
            done = resuming.channel.attach(socket, greeting)
            if done is not None:
                logger.info("browser tab %s resumed on a new socket", resuming.id)
                await done.wait()
                return
            # gone meanwhile: this socket gets a session of its own
        tab = BrowserTab(
            id=f"tab_{next(self._ids):04d}",
            channel=BrowserChannel(socket, self.options, close_socket=False),
            client=_client(scope),
            origin=headers.get("origin"),
            query=query,
            headers={k: v for k, v in headers.items() if k not in ("cookie", "authorization")},
            started_at=trio.current_time(),
            resume_key=secrets.token_urlsafe(18),
        )
        await self._serve_tab(tab)

    def _resumable(self, resume: str) -> BrowserTab | None:
        """The live tab that ``resume`` (``"<tab id>.<key>"``) names, if the key is its."""
        tab_id, _, key = resume.partition(".")
        tab = self.tabs.get(tab_id)
        if tab is None or tab.channel.ended:
            return None
        if not hmac.compare_digest(key.encode(), tab.resume_key.encode()):
            return None
        return tab

    def _ready(self, tab: BrowserTab, *, resumed: bool) -> dict[str, Any]:
        return ready_message(tab, self.agent, self.notice, resumed=resumed)

    async def _serve_tab(self, tab: BrowserTab) -> None:
        self._started += 1
        self.tabs[tab.id] = tab
        self._idle = trio.Event()
        error: BaseException | None = None
        try:
            await handle_browser_tab(
                tab,
                self.agent,
                model=self.model,
                session_config=self.session_config,
                context_factory=self._context_factory,
                on_tab=self._on_tab,
                notice=self.notice,
            )
        except Exception as exc:  # one tab's failure is that tab's alone
            error = exc
            # a bug in the application (not the network, not the model) gets its traceback
            logger.error(
                "browser tab %s failed: %r", tab.id, exc, exc_info=exc if _is_bug(exc) else None
            )
        with trio.CancelScope(shield=True):
            try:
                if error is not None:
                    # the visitor sees what went wrong with the model, never a bug's details
                    shown = error if not _is_bug(error) else "an internal error (see the log)"
                    tab.channel.send_json({"type": "error", "message": f"session failed: {shown}"})
                    await tab.channel.aclose_with(1011, "session failed")
                else:
                    await tab.channel.aclose_with(1000, "session ended")
            finally:
                self._record(tab, error)

    def _record(self, tab: BrowserTab, error: BaseException | None) -> None:
        self.tabs.pop(tab.id, None)
        if not self.tabs:
            self._idle.set()
        if error is None:
            self._completed += 1
        else:
            self._failed += 1
        self.history.append(
            BrowserTabRecord(
                tab.id,
                tab.session.id if tab.session is not None else None,
                tab.client,
                tab.started_at,
                trio.current_time(),
                "failed" if error is not None else "completed",
                error,
                tab.channel.close_code,
                tab.channel.statistics(),
            )
        )


async def handle_browser_tab(
    tab: BrowserTab,
    agent: RealtimeAgent,
    *,
    model: RealtimeModel | None = None,
    session_config: SessionConfig | None = None,
    context_factory: ContextFactory | None = None,
    on_tab: OnTab | None = None,
    notice: str | None = None,
) -> None:
    """Run one tab: its channel, one session, and the session's events sent to the page
    for display. Returns when the tab's socket closes; errors propagate as one exception."""
    channel = tab.channel
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(channel.run)
            context = None
            if context_factory is not None:
                made = context_factory(tab)
                context = await made if inspect.isawaitable(made) else made
            async with open_session(
                agent, model=model, channel=channel, context=context
            ) as session:
                tab.session = session
                nursery.start_soon(_forward, session.events(), channel)
                if session_config is not None:
                    await session.update_config(session_config)
                channel.send_json(ready_message(tab, agent, notice))
                async with trio.open_nursery() as hooks:
                    if on_tab is not None:
                        hooks.start_soon(on_tab, tab)
                    await channel.wait_ended()
                    hooks.cancel_scope.cancel()
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise collapse(group) from None


def ready_message(
    tab: BrowserTab, agent: RealtimeAgent, notice: str | None, *, resumed: bool = False
) -> dict[str, Any]:
    """The page's ``ready``: the session, the tab, and the key to resume it after a drop."""
    return {
        "type": "ready",
        "session_id": tab.session.id if tab.session is not None else None,
        "tab": tab.id,
        "resume": f"{tab.id}.{tab.resume_key}",
        "resumed": resumed,
        "agent": agent.name or agent.id,
        "notice": notice,
    }


async def _forward(events: trio.abc.ReceiveChannel[SessionEvent], channel: BrowserChannel) -> None:
    """The session's events, as the page's display messages."""
    async with events:
        async for event in events:
            message = display_message(event)
            if message is not None:
                channel.send_json(message)


def display_message(event: SessionEvent) -> dict[str, Any] | None:
    """What the page shows of one session event (``None``: nothing)."""
    if isinstance(event, TranscriptInputDelta):
        return {
            "type": "transcript",
            "role": "user",
            "item_id": event.item_id,
            "delta": event.delta,
        }
    if isinstance(event, TranscriptInput):
        return {"type": "transcript", "role": "user", "item_id": event.item_id,
                "text": event.text, "final": True}  # fmt: skip
    if isinstance(event, TranscriptOutputDelta):
        return {"type": "transcript", "role": "assistant", "item_id": event.item_id,
                "delta": event.delta}  # fmt: skip
    if isinstance(event, TranscriptOutput):
        return {"type": "transcript", "role": "assistant", "item_id": event.item_id,
                "text": event.text, "final": True}  # fmt: skip
    if isinstance(event, SpeechStarted):
        return {"type": "speech", "state": "started", "audio_start_ms": event.audio_start_ms}
    if isinstance(event, SpeechStopped):
        return {"type": "speech", "state": "stopped", "audio_end_ms": event.audio_end_ms}
    if isinstance(event, ToolCall):
        return {"type": "tool", "state": "running", "call_id": event.call_id,
                "name": event.name, "arguments": event.arguments}  # fmt: skip
    if isinstance(event, ToolOutput):
        return {"type": "tool", "state": "error" if event.error else "done",
                "call_id": event.call_id, "name": event.name}  # fmt: skip
    if isinstance(event, ToolCancelled):
        return {"type": "tool", "state": "cancelled", "call_id": event.call_id,
                "name": event.name or "tool"}  # fmt: skip
    if isinstance(event, ResponseInterrupted):
        return {"type": "interrupted", "item_id": event.item_id, "played_ms": event.played_ms,
                "source": event.source}  # fmt: skip
    if isinstance(event, SessionError):
        return {"type": "error", "message": event.error.message}
    if isinstance(event, StatusChanged):
        return {"type": "status", "status": str(event.status.value)}
    return None


def _is_bug(error: BaseException) -> bool:
    return not isinstance(error, KernlTrioError | OSError | trio.TooSlowError)


def _headers(scope: Scope) -> dict[str, str]:
    return {
        bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
        for k, v in scope.get("headers", ())
    }


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None


async def serve_browser(
    agent: RealtimeAgent,
    *,
    model: RealtimeModel | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    allowed_origins: Sequence[str] | None = None,
    session_config: SessionConfig | None = None,
    context_factory: ContextFactory | None = None,
    on_tab: OnTab | None = None,
    options: BrowserOptions | None = None,
    max_sessions: int = 100,
    notice: str | None = None,
    history: int = 1000,
    certfile: str | None = None,
    keyfile: str | None = None,
    task_status: trio.TaskStatus[BrowserServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the page and one session per tab:
    ``server = await nursery.start(serve_browser, agent, ...)``.

    ``model`` defaults to the agent's own (or OpenAI's). ``port=0`` binds a free port
    (``server.port``; ``server.url`` is the page). ``token``: a shared secret the page must
    pass (open ``server.url``, which carries it). ``allowed_origins``: origins allowed besides
    the server's own (``"*"``: any). ``session_config`` is sent to each session once open
    (turn detection, transcription). ``context_factory(tab)`` builds each tab's context;
    ``on_tab(tab)`` runs beside each tab's session. ``certfile``/``keyfile`` serve HTTPS
    (browsers allow the microphone only on https or localhost). Runs until cancelled or
    ``server.shutdown()``.
    """
    server = BrowserServer(
        agent,
        model=model,
        host=host,
        port=port,
        token=token,
        allowed_origins=allowed_origins,
        session_config=session_config,
        context_factory=context_factory,
        on_tab=on_tab,
        options=options,
        max_sessions=max_sessions,
        notice=notice,
        history=history,
        certfile=certfile,
        keyfile=keyfile,
    )
    await server.run(task_status=task_status)
