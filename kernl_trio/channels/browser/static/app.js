// The page: microphone -> WebSocket -> server; server audio -> player worklet; the played
// positions the worklet reports -> server (so a barge-in truncates at what was heard).
// State for tests and debugging is on window.kernl.

const RATE = 24000; // PCM16 mono, both ways (the channel's formats)
const MAX_RETRIES = 5;

const $ = (id) => document.getElementById(id);
const state = {
  status: "idle",
  sessionId: null,
  sessions: [],
  messages: [], // every JSON message from the server, in order
  reports: [], // played reports sent: {item, ms, end}
  flushes: [], // {played, at}: what the player held when a clear arrived
  framesSent: 0,
  receivedMs: 0,
  interruptions: 0,
  level: 0,
  peakLevel: 0, // the loudest microphone frame so far (RMS, 0..1)
  meterMax: 0, // the widest the level meter has been drawn, in percent
  retries: 0,
  resume: null, // the key that resumes this tab's session after a dropped connection
  closes: [], // {code, reason}
};
window.kernl = state;

let ctx = null;
let capture = null;
let player = null;
let micStream = null;
let ws = null;
let currentItem = null;
let wanted = false; // the user wants to be connected
const params = new URLSearchParams(location.search);

function setStatus(status, text) {
  state.status = status;
  const el = $("status");
  el.className = "status " + status;
  el.textContent = text || status;
  $("connect").textContent = wanted ? "Disconnect" : "Connect";
  $("connect").classList.toggle("on", wanted);
  $("interrupt").disabled = status !== "live";
}

function notice(text) {
  const el = $("notice");
  el.hidden = !text;
  el.textContent = text || "";
}

function socketUrl(resume) {
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.search = params.toString(); // the token, and anything the server's context wants
  if (resume) url.searchParams.set("resume", resume); // the same session, after a drop
  return url.toString();
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

async function startAudio() {
  ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
  await ctx.audioWorklet.addModule("worklet.js");
  micStream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  const source = ctx.createMediaStreamSource(micStream);
  capture = new AudioWorkletNode(ctx, "kernl-capture", {
    numberOfInputs: 1,
    numberOfOutputs: 0,
    processorOptions: { frameMs: 20 },
  });
  capture.port.onmessage = (event) => {
    const m = event.data;
    state.level = m.level;
    state.peakLevel = Math.max(state.peakLevel, m.level);
    const width = Math.min(100, Math.round(Math.sqrt(m.level) * 250));
    state.meterMax = Math.max(state.meterMax, width);
    $("level").style.width = width + "%";
    if (ws && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 64 * 1024) {
      ws.send(m.pcm);
      state.framesSent += 1;
      if (state.framesSent % 10 === 0) $("sent").textContent = (state.framesSent / 50).toFixed(1) + " s";
    }
  };
  source.connect(capture);
  player = new AudioWorkletNode(ctx, "kernl-player", {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [1],
    processorOptions: { bufferSeconds: 30, reportMs: 10 },
  });
  player.port.onmessage = (event) => {
    const m = event.data;
    if (m.type === "played") {
      state.reports.push({ item: m.item, ms: m.ms, end: m.end });
      if (state.reports.length > 5000) state.reports.splice(0, 1000);
      send({ type: "played", item_id: m.item, ms: m.ms });
      $("buffered").textContent = Math.round(m.buffered) + " ms";
    } else if (m.type === "flushed") {
      state.flushes.push({ played: m.played, at: performance.now() });
      $("buffered").textContent = "0 ms";
      send({ type: "cleared", played: m.played });
    }
  };
  player.connect(ctx.destination);
  await ctx.resume();
}

function stopAudio() {
  if (micStream) micStream.getTracks().forEach((t) => t.stop());
  if (ctx) ctx.close();
  ctx = capture = player = micStream = null;
  $("level").style.width = "0";
}

function openSocket() {
  setStatus(state.retries ? "reconnecting" : "connecting", state.retries ? "reconnecting..." : "connecting...");
  const socket = new WebSocket(socketUrl(state.retries ? state.resume : null));
  socket.binaryType = "arraybuffer";
  ws = socket;
  socket.onmessage = (event) => {
    if (socket !== ws) return;
    if (typeof event.data === "string") onMessage(JSON.parse(event.data));
    else onAudio(event.data);
  };
  socket.onclose = (event) => {
    state.closes.push({ code: event.code, reason: event.reason });
    if (socket !== ws) return;
    ws = null;
    currentItem = null;
    if (player) player.port.postMessage({ type: "flush" });
    if (!wanted) {
      setStatus("idle", "disconnected");
      return;
    }
    // 1000: the server ended the session; 1008/1009: this page broke a limit. Anything
    // else (a dropped connection, a server restart) is worth a few more tries.
    const final = event.code === 1000 || event.code === 1008 || event.code === 1009;
    if (final || event.code >= 4000 || state.retries >= MAX_RETRIES) {
      wanted = false;
      stopAudio();
      setStatus(event.code === 1000 ? "idle" : "error", event.reason || `closed (${event.code})`);
      return;
    }
    state.retries += 1;
    const delay = Math.min(8000, 500 * 2 ** (state.retries - 1));
    setStatus("reconnecting", `connection lost; retrying in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(() => wanted && !ws && openSocket(), delay);
  };
}

function onAudio(buffer) {
  if (!player || currentItem === null) return;
  const pcm = new Int16Array(buffer);
  const samples = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 0x8000;
  player.port.postMessage({ type: "audio", item: currentItem, samples }, [samples.buffer]);
  state.receivedMs += (pcm.length * 1000) / RATE;
  $("received").textContent = (state.receivedMs / 1000).toFixed(1) + " s";
}

const bubbles = new Map();
function bubble(role, itemId) {
  let li = bubbles.get(itemId);
  if (!li) {
    li = document.createElement("li");
    li.className = role + " pending";
    li.dataset.item = itemId;
    $("transcript").appendChild(li);
    bubbles.set(itemId, li);
  }
  return li;
}

function tool(m) {
  let li = document.querySelector(`#tools li[data-call="${CSS.escape(m.call_id)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.call = m.call_id;
    $("tools").appendChild(li);
  }
  li.className = m.state;
  li.textContent = `${m.name} ${m.state}`;
}

function onMessage(m) {
  state.messages.push(m);
  if (state.messages.length > 5000) state.messages.splice(0, 1000);
  switch (m.type) {
    case "ready":
      state.sessionId = m.session_id;
      state.sessions.push(m.session_id);
      state.resume = m.resume;
      state.retries = 0;
      $("session").textContent = m.session_id || "-";
      if (m.agent) $("agent").textContent = m.agent;
      notice(m.notice || "");
      setStatus("live", m.resumed ? "live (reconnected)" : "live");
      break;
    case "item":
      currentItem = m.item_id;
      break;
    case "clear":
      currentItem = null; // the next audio comes after a new "item"
      if (player) player.port.postMessage({ type: "flush" });
      break;
    case "transcript": {
      const li = bubble(m.role, m.item_id);
      if (m.final) {
        li.textContent = m.text;
        li.classList.remove("pending");
      } else {
        li.textContent += m.delta;
      }
      break;
    }
    case "interrupted":
      state.interruptions += 1;
      $("interruptions").textContent = String(state.interruptions);
      if (m.item_id) bubble("assistant", m.item_id).classList.add("interrupted");
      break;
    case "tool":
      tool(m);
      break;
    case "speech":
      $("level").style.background = m.state === "started" ? "#2f6fd6" : "#3a9a5b";
      break;
    case "error":
      notice(m.message);
      break;
    default:
      break;
  }
}

$("connect").addEventListener("click", async () => {
  if (wanted) {
    wanted = false;
    send({ type: "bye" }); // end the session now, do not keep it for a reconnect
    if (ws) ws.close(1000, "user disconnected");
    stopAudio();
    setStatus("idle", "disconnected");
    return;
  }
  wanted = true;
  state.retries = 0;
  setStatus("connecting", "starting audio...");
  try {
    await startAudio();
  } catch (err) {
    wanted = false;
    stopAudio();
    setStatus("error", "no microphone: " + err.message);
    return;
  }
  openSocket();
});

$("interrupt").addEventListener("click", () => send({ type: "interrupt" }));
window.addEventListener("pagehide", () => {
  send({ type: "bye" });
  if (ws) ws.close(1001, "page closed");
});
// For tests: drop the socket as a network failure would (the page reconnects and resumes).
window.kernlDropSocket = () => ws && ws.close(3000, "dropped for a test");
setStatus("idle", "disconnected");
