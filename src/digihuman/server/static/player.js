// The face and the voice in sync. The AudioContext owns the clock: a turn's audio is scheduled at
// `origin + t` on it, and each animation frame shows the newest video frame whose pts the heard position
// (the output timestamp, so output latency is included) has reached. Between turns the idle clip loops
// forwards and backwards. Every shown talking frame records pts vs the audio position: the A/V sync figure.

const LEAD_S = 0.06;        // the first audio of a turn starts this far ahead (the server assumes the same)
const LATE_AUDIO_S = 0.02;  // a chunk due sooner than this starts LEAD_S later instead of being clipped
const IDLE_AFTER_S = 0.12;  // three frame periods without a due talking frame: show the idle face
const ACK_EVERY_MS = 200;
// A frame is drawn when the clock is within half a display refresh of its pts: the error centres on 0
// (early by up to ~8 ms, late by up to ~8 ms) instead of always late by up to one refresh.
const DRAW_AHEAD_S = 0.008;

export class Player {
  constructor(canvas, { onSubtitle, send }) {
    this.canvas = canvas;
    this.ctx2d = canvas.getContext("2d");
    this.onSubtitle = onSubtitle;
    this.send = send;
    this.audio = new AudioContext({ latencyHint: "interactive" });
    this.idle = [];
    this.idleFps = 25;
    this.idleCount = 0;
    this.turns = new Map();
    this.current = null;
    this.lastTalkingAt = -1;
    this.lastAck = 0;
    this.stats = {
      firstIdleFrameMs: null, framesShown: 0, framesSkipped: 0, syncSamples: [], syncMeanMs: null,
      syncMaxMs: null, firstAudioAt: new Map(), idleFramesShown: 0,
    };
    this.drawn = null;
    requestAnimationFrame(() => this.tick());
  }

  // -- the clock ------------------------------------------------------------------------------------

  heardTime() {
    // The context time being heard now (getOutputTimestamp includes the output latency).
    const ts = this.audio.getOutputTimestamp ? this.audio.getOutputTimestamp() : null;
    if (ts && ts.contextTime > 0 && ts.performanceTime > 0) {
      return ts.contextTime + (performance.now() - ts.performanceTime) / 1000;
    }
    return this.audio.currentTime - (this.audio.outputLatency || 0);
  }

  position(turn) {
    return turn && turn.origin !== null ? this.heardTime() - turn.origin : -Infinity;
  }

  // -- media in -------------------------------------------------------------------------------------

  turn(id) {
    let turn = this.turns.get(id);
    if (!turn) {
      turn = { id, origin: null, frames: [], subtitles: [], sources: [], audioEnd: 0, endS: null, done: false, cut: false };
      this.turns.set(id, turn);
      for (const old of this.turns.keys()) if (old < id - 4) this.turns.delete(old);
    }
    return turn;
  }

  begin(id) {
    this.current = this.turn(id);
  }

  addAudio(id, startS, rate, pcm) {
    const turn = this.turn(id);
    if (turn.cut) return;
    if (this.current === null || this.current.id < id) this.current = turn;
    const samples = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
    const buffer = this.audio.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);
    const now = this.audio.currentTime;
    if (turn.origin === null || turn.origin + startS < now + LATE_AUDIO_S) {
      turn.origin = now + LEAD_S - startS;
      if (!this.stats.firstAudioAt.has(id)) this.stats.firstAudioAt.set(id, performance.now() + LEAD_S * 1000);
    }
    const source = this.audio.createBufferSource();
    source.buffer = buffer;
    source.connect(this.audio.destination);
    source.start(turn.origin + startS);
    turn.sources.push(source);
    source.onended = () => { turn.sources = turn.sources.filter((s) => s !== source); };
    turn.audioEnd = Math.max(turn.audioEnd, startS + buffer.duration);
  }

  async addFrame(id, pts, jpeg) {
    const turn = this.turn(id);
    if (turn.cut) return;
    const bitmap = await createImageBitmap(new Blob([jpeg], { type: "image/jpeg" }));
    if (turn.cut) { bitmap.close(); return; }
    const frames = turn.frames;
    let i = frames.length;
    while (i > 0 && frames[i - 1].pts > pts) i--;
    frames.splice(i, 0, { pts, bitmap });
  }

  async addIdle(index, jpeg) {
    const bitmap = await createImageBitmap(new Blob([jpeg], { type: "image/jpeg" }));
    this.idle[index] = bitmap;
    if (index === 0 && this.drawn === null) this.drawIdle(performance.now());
  }

  setIdleClip(count, fps) {
    this.idleCount = count;
    this.idleFps = fps;
    this.idle = [];
  }

  addSubtitle(id, text, atS) {
    this.turn(id).subtitles.push({ text, atS });
  }

  end(id, audioS) {
    this.turn(id).endS = audioS;
  }

  cancel(id) {
    const turn = this.turn(id);
    turn.cut = true;
    for (const source of turn.sources) { try { source.stop(); } catch (e) { /* already stopped */ } }
    turn.sources = [];
    for (const f of turn.frames) f.bitmap.close();
    turn.frames = [];
    turn.subtitles = [];
    if (this.current === turn) this.current = null;
  }

  // -- drawing --------------------------------------------------------------------------------------

  tick() {
    requestAnimationFrame(() => this.tick());
    const nowMs = performance.now();
    const turn = this.current;
    let drewTalking = false;
    if (turn && turn.origin !== null) {
      const pos = this.position(turn);
      let due = null;
      while (turn.frames.length && turn.frames[0].pts <= pos + DRAW_AHEAD_S) {
        if (due) { due.bitmap.close(); this.stats.framesSkipped++; }
        due = turn.frames.shift();
      }
      if (due) {
        const drawPos = this.position(turn);
        this.ctx2d.drawImage(due.bitmap, 0, 0, this.canvas.width, this.canvas.height);
        due.bitmap.close();
        this.drawn = "talking";
        this.lastTalkingAt = nowMs;
        drewTalking = true;
        this.recordSync(drawPos - due.pts);
      }
      while (turn.subtitles.length && turn.subtitles[0].atS <= pos) this.onSubtitle(turn.subtitles.shift().text, turn.id);
      if (nowMs - this.lastAck > ACK_EVERY_MS && pos > 0) this.ack(turn, pos);
      if (turn.endS !== null && pos >= turn.endS && !turn.done) this.finish(turn, pos);
    }
    if (!drewTalking && nowMs - this.lastTalkingAt > IDLE_AFTER_S * 1000) this.drawIdle(nowMs);
  }

  ack(turn, pos) {
    this.lastAck = performance.now();
    if (!turn.done) this.send({ type: "played", turn: turn.id, played_s: Math.min(pos, turn.audioEnd) });
  }

  finish(turn, pos) {
    turn.done = true;
    this.send({ type: "played", turn: turn.id, played_s: Math.min(pos, turn.audioEnd), done: true });
    if (this.current === turn) this.current = null;
    this.onSubtitle(null, turn.id);
  }

  drawIdle(nowMs) {
    const n = this.idleCount;
    if (!n) return;
    // Forwards then backwards: breathing and head motion never jump at the loop point.
    const period = Math.max(1, 2 * n - 2);
    const step = Math.floor((nowMs / 1000) * this.idleFps) % period;
    const index = step < n ? step : period - step;
    const bitmap = this.idle[index] || this.idle[0];
    if (!bitmap) return;
    if (this.drawn === index) return;
    this.ctx2d.drawImage(bitmap, 0, 0, this.canvas.width, this.canvas.height);
    if (this.stats.firstIdleFrameMs === null) this.stats.firstIdleFrameMs = nowMs;
    this.stats.idleFramesShown++;
    this.drawn = index;
  }

  recordSync(skewS) {
    const s = this.stats;
    s.framesShown++;
    s.syncSamples.push(skewS * 1000);
    if (s.syncSamples.length > 2000) s.syncSamples.shift();
    const abs = s.syncSamples.map(Math.abs);
    s.syncMeanMs = abs.reduce((a, b) => a + b, 0) / abs.length;
    s.syncMaxMs = Math.max(...abs);
  }
}
