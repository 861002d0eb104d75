// The microphone (16 kHz 16-bit PCM, echo cancellation and noise suppression on) and the camera
// (JPEG about twice a second) to the server. Nothing is stored: the server listens and looks in memory.

const MIC = 16, CAMERA = 17, MIC_RATE = 16000, SEND_EVERY = 640; // 40 ms per message
const CAMERA_EVERY_MS = 500;

export function packMedia(kind, t, extra, payload) {
  const out = new Uint8Array(20 + payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, kind);
  view.setUint32(4, 0, true);
  view.setFloat64(8, t, true);
  view.setUint32(16, extra, true);
  out.set(new Uint8Array(payload.buffer ?? payload, payload.byteOffset ?? 0, payload.byteLength), 20);
  return out.buffer;
}

export class Microphone {
  constructor(audioContext, sendBinary) {
    this.audio = audioContext;
    this.sendBinary = sendBinary;
    this.stream = null;
    this.node = null;
    this.pending = [];
    this.pendingLength = 0;
    this.carry = 0; // fractional read position for the resampler
    this.sent = 0;
    this.enabled = false; // push-to-talk: samples flow only while held
  }

  async open() {
    if (this.stream) return;
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    await this.audio.audioWorklet.addModule("/static/mic-worklet.js");
    const source = this.audio.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.audio, "mic-tap");
    this.node.port.onmessage = (e) => { if (this.enabled) this.take(e.data); };
    source.connect(this.node);
    this.node.connect(this.audio.destination); // pulled by the graph (its output is silent)
  }

  take(block) {
    // Linear resampling from the context rate to 16 kHz.
    const ratio = this.audio.sampleRate / MIC_RATE;
    const out = [];
    let pos = this.carry;
    while (pos < block.length - 1) {
      const i = Math.floor(pos), f = pos - i;
      out.push(block[i] * (1 - f) + block[i + 1] * f);
      pos += ratio;
    }
    this.carry = pos - block.length;
    const pcm = new Int16Array(out.length);
    for (let i = 0; i < out.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(out[i] * 32767)));
    this.pending.push(pcm);
    this.pendingLength += pcm.length;
    if (this.pendingLength >= SEND_EVERY) this.flush();
  }

  flush() {
    if (!this.pendingLength) return;
    const all = new Int16Array(this.pendingLength);
    let at = 0;
    for (const part of this.pending) { all.set(part, at); at += part.length; }
    this.pending = [];
    this.pendingLength = 0;
    this.sendBinary(packMedia(MIC, this.sent / MIC_RATE, MIC_RATE, all));
    this.sent += all.length;
  }

  close() {
    this.enabled = false;
    if (this.node) this.node.disconnect();
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.node = null;
  }
}

export class Camera {
  constructor(video, sendBinary) {
    this.video = video;
    this.sendBinary = sendBinary;
    this.stream = null;
    this.timer = null;
    this.canvas = document.createElement("canvas");
  }

  async open() {
    this.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    this.video.srcObject = this.stream;
    await this.video.play();
    this.timer = setInterval(() => this.grab(), CAMERA_EVERY_MS);
  }

  grab() {
    const { videoWidth: w, videoHeight: h } = this.video;
    if (!w || !h) return;
    this.canvas.width = w;
    this.canvas.height = h;
    this.canvas.getContext("2d").drawImage(this.video, 0, 0, w, h);
    this.canvas.toBlob(async (blob) => {
      if (blob) this.sendBinary(packMedia(CAMERA, performance.now() / 1000, 0, new Uint8Array(await blob.arrayBuffer())));
    }, "image/jpeg", 0.7);
  }

  close() {
    clearInterval(this.timer);
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.video.srcObject = null;
  }
}
