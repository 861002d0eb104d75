// The page: one live session over one WebSocket (protocol 1, see server/protocol.py).
import { t, translatePage } from "/static/i18n.js";
import { Player } from "/static/player.js";
import { Camera, Microphone } from "/static/media-in.js";

const PROTOCOL = 1;
const AUDIO = 1, VIDEO = 2, IDLE = 3;
const RESUME_FOR_MS = 55_000; // the server keeps a session a minute for a page that comes back
const METRICS = ["llm_first_token_s", "first_sentence_s", "tts_first_audio_s", "first_frame_s", "first_audio_played_s", "total_s"];

const $ = (id) => document.getElementById(id);
const state = {
  ws: null, sessionId: null, character: null, player: null, mic: null, camera: null,
  typedAt: new Map(), typedToAudioMs: null, typedToArrivalMs: null, reconnectSince: null, closed: false, lastTurn: null,
};
// For tests and the curious: the numbers the latency panel shows.
window.digihuman = state;

function showMessage(text) {
  const el = $("message");
  el.hidden = !text;
  el.textContent = text || "";
}

function setState(name) {
  const el = $("state");
  el.dataset.state = name;
  el.className = `state state-${name}`;
  el.textContent = t(name);
}

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function sendBinary(data) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN && state.ws.bufferedAmount < 1 << 20) state.ws.send(data);
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  try { body = await response.json(); } catch (e) { /* an empty or non-JSON body */ }
  if (!response.ok) {
    const error = new Error((body && body.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

// -- characters -------------------------------------------------------------------------------------

async function loadCharacters(selected) {
  const list = await api("/v1/characters");
  const select = $("character");
  select.innerHTML = "";
  for (const c of list) {
    const option = document.createElement("option");
    option.value = c.id;
    option.textContent = `${c.name} (${c.language})`;
    select.append(option);
  }
  if (selected) select.value = selected;
  const current = list.find((c) => c.id === state.character?.id);
  if (current) state.character = current;
  return list;
}

async function createCharacter(event) {
  event.preventDefault();
  const form = event.target;
  const status = $("create-status");
  status.className = "create-status";
  status.textContent = t("creating");
  const data = new FormData(form);
  if (!data.get("voice") || !data.get("voice").size) data.delete("voice");
  try {
    const created = await api("/v1/characters", { method: "POST", body: data });
    status.textContent = `${t("created")}: ${created.name}`;
    form.reset();
    await loadCharacters(created.id);
    await switchCharacter(created.id);
  } catch (error) {
    status.className = "create-status error";
    status.textContent = error.message;
  }
}

async function switchCharacter(id) {
  if (state.sessionId) {
    const old = state.sessionId;
    state.sessionId = null;
    sessionStorage.removeItem("digihuman.session");
    if (state.ws) state.ws.close(1000);
    api(`/v1/sessions/${old}`, { method: "DELETE" }).catch(() => {});
  }
  await startSession(id);
}

// -- the session ------------------------------------------------------------------------------------

async function startSession(character) {
  showMessage("");
  setState("connecting");
  try {
    const created = await api("/v1/sessions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(character ? { character } : {}),
    });
    state.sessionId = created.id;
    state.character = created.character;
    if ($("character").options.length) $("character").value = created.character.id;
    sessionStorage.setItem("digihuman.session", JSON.stringify({ id: created.id, character: created.character.id }));
    connect();
  } catch (error) {
    setState("idle");
    showMessage(error.status === 503 ? `${t("busy")}: ${error.message}` : error.message);
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/sessions/${state.sessionId}/ws`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => {
    state.reconnectSince = null;
    ws.send(JSON.stringify({ type: "hello", protocol: PROTOCOL, capabilities: { render: ["frames"], audio: ["pcm16"], video: ["jpeg"] } }));
  };
  ws.onmessage = (event) => (typeof event.data === "string" ? onJson(JSON.parse(event.data)) : onMedia(event.data));
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (event.code === 4404 && !state.closed) return startSession($("character").value); // it expired
    if (event.code === 4409) return showMessage(t("taken_over")); // the session is open in another tab
    if (state.closed || !state.sessionId || event.code === 1000) return;
    // The network blinked or the server restarted a worker: the same session resumes within a minute.
    state.reconnectSince ??= Date.now();
    if (Date.now() - state.reconnectSince > RESUME_FOR_MS) return ended(t("closed"));
    setState("reconnecting");
    setTimeout(connect, 1000);
  };
}

function ended(reason) {
  state.closed = true;
  state.sessionId = null;
  sessionStorage.removeItem("digihuman.session");
  setState("idle");
  showMessage(`${t("closed")}: ${reason}`);
  const again = document.createElement("button");
  again.textContent = t("new_session");
  again.onclick = () => { state.closed = false; $("message").hidden = true; startSession($("character").value); };
  $("message").append(" ", again);
}

function onJson(m) {
  const player = state.player;
  switch (m.type) {
    case "hello": state.hello = m; break;
    case "state": setState(m.state); break;
    case "idle_clip": player.setIdleClip(m.frames, m.fps); break;
    case "begin": player.begin(m.turn); break;
    case "end": player.end(m.turn, m.audio_s); break;
    case "cancel": player.cancel(m.turn); break;
    case "reply_text": player.addSubtitle(m.turn, m.text, m.at_s); break;
    case "transcript": showHeard(m.text, m.final); break;
    case "turn": showTurn(m); break;
    case "error":
      showMessage(m.message);
      if (m.source === "mic") micOff();
      if (m.fatal) { state.sessionId = null; sessionStorage.removeItem("digihuman.session"); }
      break;
    case "closed": ended(m.reason); break;
    default: break;
  }
}

function onMedia(buffer) {
  const view = new DataView(buffer);
  const kind = view.getUint8(0), turn = view.getUint32(4, true), time = view.getFloat64(8, true);
  const extra = view.getUint32(16, true);
  const payload = buffer.slice(20);
  if (kind === AUDIO) {
    state.player.addAudio(turn, time, extra, new Int16Array(payload));
    const typed = state.typedAt.get("pending");
    if (typed !== undefined && time === 0) {
      state.typedAt.delete("pending");
      state.typedToArrivalMs = performance.now() - typed;
      state.typedToAudioMs = state.player.stats.firstAudioAt.get(turn) - typed;
      renderMetrics();
    }
  } else if (kind === VIDEO) {
    state.player.addFrame(turn, time, payload);
  } else if (kind === IDLE) {
    state.player.addIdle(extra, payload);
  }
}

// -- what is shown ----------------------------------------------------------------------------------

function showSubtitle(text) {
  $("subtitle").textContent = text ?? "";
}

function showHeard(text, final) {
  const el = $("heard");
  el.textContent = text ? `${t("you")}: ${text}` : "";
  el.classList.toggle("final", !!final);
  if (final && text) addLog("user", text);
}

function addLog(who, text) {
  const item = document.createElement("li");
  item.className = who;
  item.textContent = who === "user" ? `${t("you")}: ${text}` : `${state.character?.name ?? ""}: ${text}`;
  $("log").append(item);
  item.scrollIntoView({ block: "nearest" });
}

function showTurn(record) {
  state.lastTurn = record;
  if (record.text_shown) addLog("character", record.text_shown);
  renderMetrics();
}

function renderMetrics() {
  const rows = [];
  const metrics = state.lastTurn?.metrics ?? {};
  for (const key of METRICS) if (metrics[key] !== undefined && metrics[key] !== null) rows.push([t(key), `${Math.round(metrics[key] * 1000)} ms`]);
  const stats = state.player?.stats;
  if (state.typedToAudioMs !== null) rows.push([t("typed_to_audio_ms"), `${Math.round(state.typedToAudioMs)} ms`]);
  if (stats && stats.syncMeanMs !== null) {
    rows.push([t("av_sync_ms"), `${stats.syncMeanMs.toFixed(1)} ms`]);
    rows.push([t("av_sync_max_ms"), `${stats.syncMaxMs.toFixed(1)} ms`]);
    rows.push([t("frames_shown"), `${stats.framesShown}`], [t("frames_dropped"), `${stats.framesSkipped}`]);
  }
  const body = $("metrics").tBodies[0];
  body.innerHTML = "";
  for (const [name, value] of rows) {
    const tr = body.insertRow();
    tr.insertCell().textContent = name;
    tr.insertCell().textContent = value;
  }
}

// -- inputs -----------------------------------------------------------------------------------------

function wakeAudio() {
  const audio = state.player.audio;
  if (audio.state !== "running") audio.resume().then(() => { $("unmute").hidden = true; });
}

function sendText(event) {
  event.preventDefault();
  wakeAudio();
  const input = $("text");
  const text = input.value.trim();
  if (!text) return;
  state.typedAt.set("pending", performance.now());
  send({ type: "user_text", text });
  addLog("user", text);
  input.value = "";
}

async function toggleMic() {
  wakeAudio();
  const button = $("mic");
  const pushToTalk = $("mic-mode").value === "push-to-talk";
  if (pushToTalk) return;
  if (state.mic && state.mic.enabled) {
    state.mic.enabled = false;
    state.mic.flush();
    send({ type: "mic", state: "stop" });
    button.setAttribute("aria-pressed", "false");
    button.textContent = t("mic_on");
    return;
  }
  if (!(await openMic())) return;
  send({ type: "mic", state: "start" });
  state.mic.enabled = true;
  button.setAttribute("aria-pressed", "true");
  button.textContent = t("mic_off");
}

function micOff() {
  if (state.mic) state.mic.enabled = false;
  $("mic").setAttribute("aria-pressed", "false");
  updateMicLabel();
}

async function openMic() {
  try {
    state.mic ??= new Microphone(state.player.audio, sendBinary);
    await state.mic.open();
    return true;
  } catch (error) {
    showMessage(t("no_mic") + error.message);
    return false;
  }
}

async function holdMic(down) {
  if ($("mic-mode").value !== "push-to-talk") return;
  wakeAudio();
  const button = $("mic");
  if (down) {
    if (!(await openMic())) return;
    send({ type: "mic", state: "start" });
    state.mic.enabled = true;
    button.setAttribute("aria-pressed", "true");
  } else if (state.mic && state.mic.enabled) {
    state.mic.enabled = false;
    state.mic.flush();
    send({ type: "mic", state: "stop" });
    button.setAttribute("aria-pressed", "false");
  }
}

async function toggleCamera() {
  const button = $("camera");
  if (state.camera) {
    state.camera.close();
    state.camera = null;
    button.setAttribute("aria-pressed", "false");
    button.textContent = t("camera_on");
    return;
  }
  try {
    state.camera = new Camera($("camera-preview"), sendBinary);
    await state.camera.open();
    button.setAttribute("aria-pressed", "true");
    button.textContent = t("camera_off");
  } catch (error) {
    state.camera = null;
    showMessage(t("no_camera") + error.message);
  }
}

function updateMicLabel() {
  $("mic").textContent = $("mic-mode").value === "push-to-talk" ? t("hold_to_talk") : t("mic_on");
}

// -- start ------------------------------------------------------------------------------------------

async function main() {
  translatePage();
  setState("connecting");
  state.player = new Player($("face"), { onSubtitle: showSubtitle, send });
  if (state.player.audio.state !== "running") $("unmute").hidden = false;
  state.player.audio.onstatechange = () => { $("unmute").hidden = state.player.audio.state === "running"; };
  setInterval(renderMetrics, 1000);
  $("unmute").onclick = wakeAudio;
  $("say-form").onsubmit = sendText;
  $("mic").onclick = toggleMic;
  $("mic").onpointerdown = () => holdMic(true);
  $("mic").onpointerup = () => holdMic(false);
  $("mic").onpointerleave = () => holdMic(false);
  $("mic-mode").onchange = updateMicLabel;
  $("camera").onclick = toggleCamera;
  $("interrupt").onclick = () => send({ type: "interrupt" });
  $("create-form").onsubmit = createCharacter;
  $("character").onchange = (e) => switchCharacter(e.target.value);
  const saved = JSON.parse(sessionStorage.getItem("digihuman.session") || "null");
  const wanted = new URLSearchParams(location.search).get("character");
  // The session starts while the character list loads: the face shows up sooner.
  if (saved && (!wanted || wanted === saved.character)) {
    // A reload: resume the same conversation if the server still has it.
    state.sessionId = saved.id;
    state.character = { id: saved.character };
    connect();
  } else {
    startSession(wanted || null);
  }
  try {
    await loadCharacters(wanted || saved?.character || state.character?.id);
  } catch (error) {
    showMessage(error.message);
  }
}

main();
