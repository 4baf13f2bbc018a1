// voicebot agent page: the agent's own voice on a call it took over (voicebot.agent.v1 "audio.start").
// Microphone -> 20 ms pcm_s16le binary frames to the server; the caller's audio (binary frames, same
// format) -> the speakers. The AudioContext runs at 16 kHz where the browser allows it, else at its own
// rate, which audio.start declares (the server converts to the caller line's codec and rate).
"use strict";

const VOICE_RATES = [8000, 16000, 22050, 24000, 44100, 48000];

class AgentVoice {
  constructor(sendJson, sendBinary) {
    this.sendJson = sendJson;
    this.sendBinary = sendBinary;
    this.callId = null;
    this.open = false; // between the server's audio.started and audio.stopped
    this.rate = 16000;
    this.sentBytes = 0;
    this.receivedBytes = 0;
    this.ctx = null; this.stream = null; this.source = null; this.node = null;
    this.playhead = 0;
  }

  // Open the microphone and ask the server for a voice channel on callId.
  async start(callId) {
    this.stop();
    this.callId = callId;
    try { this.ctx = new AudioContext({ sampleRate: 16000 }); } catch (e) { this.ctx = new AudioContext(); }
    await this.ctx.resume();
    this.rate = VOICE_RATES.includes(this.ctx.sampleRate) ? this.ctx.sampleRate : 16000;
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    if (this.callId !== callId) return; // stopped while the browser asked for the microphone
    this.source = this.ctx.createMediaStreamSource(this.stream);
    await this.ctx.audioWorklet.addModule("/static/phone-worklet.js");
    this.node = new AudioWorkletNode(this.ctx, "pcm-capture", { numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1 });
    this.node.port.onmessage = (ev) => {
      if (!this.open) return;
      this.sentBytes += ev.data.byteLength;
      this.sendBinary(ev.data);
    };
    this.source.connect(this.node);
    this.sendJson({ call_id: callId, encoding: "pcm_s16le", sample_rate: this.rate });
  }

  // The caller's audio (pcm_s16le at this.rate): played with a small jitter buffer.
  play(data) {
    if (!this.ctx || !this.open) return;
    this.receivedBytes += data.byteLength;
    const pcm = new Int16Array(data);
    const buffer = this.ctx.createBuffer(1, pcm.length, this.rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
    const src = this.ctx.createBufferSource();
    src.buffer = buffer;
    src.connect(this.ctx.destination);
    this.playhead = Math.max(this.playhead, this.ctx.currentTime + 0.08);
    src.start(this.playhead);
    this.playhead += buffer.duration;
  }

  stop() {
    this.open = false;
    this.callId = null;
    if (this.node) { try { this.node.disconnect(); } catch (e) { /* gone */ } this.node = null; }
    if (this.source) { try { this.source.disconnect(); } catch (e) { /* gone */ } this.source = null; }
    if (this.stream) { for (const t of this.stream.getTracks()) t.stop(); this.stream = null; }
    if (this.ctx) { this.ctx.close().catch(() => {}); this.ctx = null; }
    this.playhead = 0;
  }
}
window.AgentVoice = AgentVoice;
