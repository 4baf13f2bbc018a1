// voicebot softphone: microphone -> pcm_s16le frames over /v1/call (voicebot.v1); bot audio played back.
// The AudioContext runs at 16 kHz where the browser allows it (it resamples the microphone for us);
// otherwise at its own rate, which the start message declares (the server accepts 8-48 kHz).
"use strict";

const $ = (id) => document.getElementById(id);
const SUPPORTED_RATES = [8000, 16000, 22050, 24000, 44100, 48000];
// window.phone: for tests and debugging. A test that sets phone.tap = [] gets every received audio chunk in it.
const phone = { state: "idle", events: [], callId: null, botBytes: 0, tap: null };
window.phone = phone;

let ws = null, ctx = null, stream = null, node = null, source = null;
let playhead = 0;
const playing = new Set();

function setStatus(text, state) {
  $("status").textContent = text;
  if (state) phone.state = state;
  $("btn-call").disabled = phone.state === "calling" || phone.state === "connected";
  $("btn-hangup").disabled = !(phone.state === "calling" || phone.state === "connected");
}

function line(cls, text) {
  const li = document.createElement("li");
  li.className = `line ${cls}`;
  li.textContent = text;
  $("transcript").append(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

async function call() {
  setStatus("verbinde …", "calling");
  $("transcript").replaceChildren();
  try {
    try { ctx = new AudioContext({ sampleRate: 16000 }); } catch (e) { ctx = new AudioContext(); }
    await ctx.resume();
    const rate = SUPPORTED_RATES.includes(ctx.sampleRate) ? ctx.sampleRate : 16000;
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    source = ctx.createMediaStreamSource(stream);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/v1/call`, "voicebot.v1");
    ws.binaryType = "arraybuffer";
    ws.onopen = async () => {
      // With server.caller_tokens set, open /phone#token=…: the fragment never reaches a server log.
      const token = new URLSearchParams(location.hash.slice(1)).get("token");
      const start = { type: "start", protocol: "voicebot.v1", encoding: "pcm_s16le", sample_rate: rate,
        caller: { name: "Softphone" } };
      if (token) start.token = token;
      ws.send(JSON.stringify(start));
      await startCapture(rate);
    };
    ws.onmessage = (msg) => {
      if (typeof msg.data === "string") onEvent(JSON.parse(msg.data));
      else playAudio(msg.data, rate);
    };
    ws.onclose = (ev) => { teardown(); setStatus(`aufgelegt (${ev.code})`, "ended"); };
  } catch (err) {
    teardown();
    setStatus(`Fehler: ${err.message || err}`, "error");
  }
}

async function startCapture(rate) {
  const send = (buffer) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(buffer); };
  if (ctx.audioWorklet) {
    await ctx.audioWorklet.addModule("/static/phone-worklet.js");
    node = new AudioWorkletNode(ctx, "pcm-capture", { numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1 });
    node.port.onmessage = (ev) => send(ev.data);
    source.connect(node);
  } else {
    // Fallback for browsers without AudioWorklet: ScriptProcessor (deprecated, but everywhere).
    node = ctx.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (ev) => {
      const input = ev.inputBuffer.getChannelData(0);
      const pcm = new Int16Array(input.length);
      for (let i = 0; i < input.length; i++) {
        const s = Math.max(-1, Math.min(1, input[i]));
        pcm[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
      }
      send(pcm.buffer);
    };
    source.connect(node);
    node.connect(ctx.destination);
  }
  setStatus("verbunden", "connected");
}

function onEvent(ev) {
  phone.events.push(ev);
  switch (ev.type) {
    case "call.started":
      phone.callId = ev.call_id;
      $("call-id").textContent = ev.call_id;
      break;
    case "transcript.partial": {
      let p = $("partial");
      if (!p) { p = line("line-caller line-partial", ""); p.id = "partial"; p.dataset.testid = "partial"; }
      p.textContent = ev.text;
      break;
    }
    case "transcript.final": {
      const p = $("partial");
      if (p) p.remove();
      if ((ev.text || "").trim()) line("line-caller", ev.text).dataset.testid = "final";
      break;
    }
    case "bot.utterance": line("line-bot", ev.text).dataset.testid = "bot"; break;
    case "intent": $("intent").textContent = `${ev.label} (${Math.round(ev.confidence * 100)} %)`; break;
    case "bargein": if (ev.action !== "resumed") stopPlayback(); break;
    case "agent.takeover": line("line-system", "Ein Mitarbeiter hat das Gespräch übernommen."); break;
    case "handoff": line("line-system", "Sie werden mit einem Mitarbeiter verbunden."); break;
    case "error": line("line-system", `Fehler: ${ev.code} – ${ev.message}`); break;
    case "call.end": line("line-system", `Gespräch beendet (${ev.reason})`); break;
    default: break;
  }
}

function playAudio(data, rate) {
  if (!ctx) return;
  phone.botBytes += data.byteLength;
  if (phone.tap) phone.tap.push(data.slice(0));
  const pcm = new Int16Array(data);
  const buffer = ctx.createBuffer(1, pcm.length, rate);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
  const src = ctx.createBufferSource();
  src.buffer = buffer;
  src.connect(ctx.destination);
  playhead = Math.max(playhead, ctx.currentTime + 0.05); // a little jitter buffer
  src.start(playhead);
  playhead += buffer.duration;
  playing.add(src);
  src.onended = () => playing.delete(src);
}

function stopPlayback() {
  for (const src of playing) { try { src.stop(); } catch (e) { /* already stopped */ } }
  playing.clear();
  playhead = 0;
}

function hangup() {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
  setStatus("lege auf …");
  setTimeout(teardown, 3000);
}

function teardown() {
  stopPlayback();
  if (node) { try { node.disconnect(); } catch (e) { /* gone */ } node = null; }
  if (source) { try { source.disconnect(); } catch (e) { /* gone */ } source = null; }
  if (stream) { for (const t of stream.getTracks()) t.stop(); stream = null; }
  if (ctx) { ctx.close().catch(() => {}); ctx = null; }
}

$("btn-call").addEventListener("click", call);
$("btn-hangup").addEventListener("click", hangup);
