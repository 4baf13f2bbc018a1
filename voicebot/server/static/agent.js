// voicebot agent page: live calls over /v1/agent (protocol voicebot.agent.v1). No build step, no framework.
// All text from the server is inserted with textContent, never as HTML.
"use strict";

const INTENTS = {
  bestellung: "Bestellung / Lieferung", reklamation: "Reklamation", rechnung: "Rechnung / Zahlung",
  kuendigung: "Kündigung", stammdaten: "Stammdaten ändern", pannenhilfe: "Pannenhilfe",
  schadensmeldung: "Schadensmeldung", technik: "Technische Störung", beratung: "Beratung", termin: "Termin",
  notfall: "NOTFALL", seelsorge: "Seelsorge / Krise", mitarbeiter: "Mitarbeiter gewünscht", sonstiges: "Sonstiges",
};
const URGENT = new Set(["notfall", "seelsorge"]);
const SLOTS = {
  customer_number: "Kundennummer", contract_number: "Vertragsnummer", order_number: "Bestellnummer",
  policy_number: "Policennummer", invoice_number: "Rechnungsnummer", member_number: "Mitgliedsnummer",
  number: "Nummer", licence_plate: "Kennzeichen", postcode: "PLZ", date: "Datum", time: "Uhrzeit",
  amount: "Betrag", iban: "IBAN", iban_invalid: "IBAN (ungültig)", phone: "Telefon", email: "E-Mail",
};
const STATES = { bot: "Bot", human: "Mitarbeiter", ended: "Beendet" };
const SPEAKERS = { bot: "Bot", caller: "Anrufer", agent: "Mitarbeiter" };

const calls = new Map(); // call_id -> {summary, lines, partial, agentPartial, intent, slots, suggestions, steps, handoff, wrapup}
let selected = null;
let ws = null;
let agentId = "";
let wrapupCodes = [];
// The agent's own voice on a call it took over (agent-voice.js); window.agentVoice for tests and debugging.
const voice = new AgentVoice((format) => send({ type: "audio.start", ...format }),
  (buffer) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(buffer); });
window.agentVoice = voice;
const stats = {}; // message counts by type, as window.agentStats (for tests and debugging)
window.agentStats = stats;
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
const intentName = (label) => INTENTS[label] || label || "–";
const pct = (p) => `${Math.round((Number(p) || 0) * 100)} %`;
function clock(ts) {
  return ts ? new Date(ts * 1000).toLocaleTimeString("de-DE", { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";
}

// ------------------------------------------------------------------ connection
function token() {
  // A link may carry "#token=...&agent=...": keep it for this tab, then take it out of the address bar.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) sessionStorage.setItem("voicebot.token", hash.get("token"));
  if (hash.get("agent")) sessionStorage.setItem("voicebot.agent", hash.get("agent"));
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  return sessionStorage.getItem("voicebot.token");
}

function connect() {
  const tok = token();
  if (!tok) { showLogin(); return; }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${proto}//${location.host}/v1/agent`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    ws.send(JSON.stringify({ type: "auth", token: tok, agent: sessionStorage.getItem("voicebot.agent") || undefined }));
  };
  ws.onmessage = (msg) => {
    if (typeof msg.data !== "string") { voice.play(msg.data); return; } // the caller's audio
    try { onMessage(JSON.parse(msg.data)); } catch (e) { console.error(e); }
  };
  ws.onclose = (ev) => {
    setConn(false);
    voice.stop();
    if (ev.code === 4401) { sessionStorage.removeItem("voicebot.token"); showLogin("Token ungültig."); return; }
    setTimeout(connect, 2000);
  };
}

function send(obj) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj)); }
function setConn(on) {
  const c = $("conn");
  c.textContent = on ? "verbunden" : "getrennt";
  c.className = `pill ${on ? "pill-on" : "pill-off"}`;
}
function showLogin(error) {
  $("login").hidden = false;
  $("login-error").hidden = !error;
  $("login-error").textContent = error || "";
}
$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("voicebot.token", $("token-input").value.trim());
  if ($("agent-input").value.trim()) sessionStorage.setItem("voicebot.agent", $("agent-input").value.trim());
  $("login").hidden = true;
  connect();
});

// ------------------------------------------------------------------ messages
function callState(id) {
  if (!calls.has(id)) {
    calls.set(id, { summary: { call_id: id, state: "bot" }, lines: [], partial: null, agentPartial: null, intent: null,
      slots: {}, suggestions: [], steps: [], handoff: null, wrapup: null });
  }
  return calls.get(id);
}

function onMessage(m) {
  stats[m.type] = (stats[m.type] || 0) + 1;
  switch (m.type) {
    case "auth.ok":
      agentId = m.agent_id; $("agent-name").textContent = agentId; setConn(true);
      wrapupCodes = m.wrapup_codes || [];
      send({ type: "subscribe", call_id: "*" });
      return;
    case "calls":
      for (const s of m.calls) callState(s.call_id).summary = s;
      renderList(); return;
    case "call.update":
      callState(m.call.call_id).summary = m.call;
      renderList();
      if (m.call.call_id === selected) renderHead();
      return;
    case "replay": {
      const c = callState(m.call_id);
      Object.assign(c, { lines: [], partial: null, agentPartial: null, intent: null, slots: {}, suggestions: [], steps: [],
        handoff: null, wrapup: null });
      if (m.call) c.summary = m.call;
      for (const ev of m.events) apply(c, ev);
      renderList();
      if (m.call_id === selected) renderDetail();
      return;
    }
    case "error":
      if (m.call_id) flash(`Fehler: ${m.message}`);
      else console.warn("server error", m);
      return;
    case "subscribed": case "ack": case "pong": case "unsubscribed":
      return;
    case "audio.started":
      voice.open = voice.callId === m.call_id;
      renderVoice(); return;
    case "audio.stopped":
      if (voice.callId === m.call_id) voice.stop();
      renderVoice(); return;
    default:
      if (!m.call_id) return;
      apply(callState(m.call_id), m);
      // Taking a call over opens the microphone to the caller; releasing or the end closes it.
      if (m.type === "agent.takeover" && m.agent_id === agentId) startVoice(m.call_id);
      if ((m.type === "agent.release" || m.type === "call.end") && voice.callId === m.call_id) {
        voice.stop(); renderVoice();
      }
      if (m.type === "handoff" || m.type === "call.end" || m.type === "agent.takeover") renderQueue();
      if (m.call_id === selected) {
        if (m.type === "transcript.partial" && m.speaker !== "agent") renderPartial(); else renderDetail();
      }
  }
}

function apply(c, ev) {
  switch (ev.type) {
    case "transcript.partial":
      if (ev.speaker === "agent") c.agentPartial = ev.text; else c.partial = ev.text;
      break;
    case "transcript.final": {
      const who = ev.speaker === "agent" ? "agent" : "caller";
      if (who === "agent") c.agentPartial = null; else c.partial = null;
      if ((ev.text || "").trim()) c.lines.push({ who, text: ev.text, ts: ev.ts });
      break;
    }
    case "wrapup":
      c.wrapup = ev;
      c.lines.push({ who: "system", text: `Abschluss: ${ev.label || ev.code}${ev.note ? ` – ${ev.note}` : ""}`, ts: ev.ts });
      break;
    case "bot.utterance": c.lines.push({ who: "bot", text: ev.text, ts: ev.ts }); break;
    case "intent":
      c.intent = ev;
      Object.assign(c.slots, ev.slots || {});
      break;
    case "suggestions":
      c.suggestions = ev.items || [];
      if ((ev.next_steps || []).length) c.steps = ev.next_steps;
      break;
    case "handoff":
      c.handoff = ev;
      if (ev.context && (ev.context.next_steps || []).length) c.steps = ev.context.next_steps;
      if (ev.context && ev.context.slots) Object.assign(c.slots, ev.context.slots);
      c.lines.push({ who: "system", text: `Übergabe an Mitarbeiter (${ev.reason || ""})`, ts: ev.ts });
      break;
    case "route": c.lines.push({ who: "system", text: `Weiterleitung an: ${ev.route}`, ts: ev.ts }); break;
    case "agent.takeover":
      c.summary.state = "human"; c.summary.agent_id = ev.agent_id;
      c.lines.push({ who: "system", text: `Übernommen von ${ev.agent_id}`, ts: ev.ts });
      break;
    case "agent.release":
      c.summary.state = "bot";
      c.lines.push({ who: "system", text: `Zurück an den Bot (${ev.agent_id})`, ts: ev.ts });
      break;
    case "bargein":
      if (ev.action === "stopped") c.lines.push({ who: "system", text: "Anrufer hat den Bot unterbrochen", ts: ev.ts });
      else if (ev.action === "resumed") {
        c.lines.push({ who: "system", text: `Anrufer hat kurz dazwischengesprochen${ev.text ? ` („${ev.text}“)` : ""}; Bot spricht weiter`, ts: ev.ts });
      }
      break;
    case "call.end":
      c.summary.state = "ended"; c.partial = null;
      c.lines.push({ who: "system", text: `Gespräch beendet (${ev.reason || ""})`, ts: ev.ts });
      break;
    case "error":
      c.lines.push({ who: "system", text: `Fehler: ${ev.code}`, ts: ev.ts });
      break;
    default: break;
  }
}

// ------------------------------------------------------------------ rendering
function renderList() {
  const list = $("calls");
  list.replaceChildren();
  const items = [...calls.values()].sort((a, b) => {
    const ea = a.summary.state === "ended", eb = b.summary.state === "ended";
    return ea !== eb ? (ea ? 1 : -1) : (b.summary.started_at || 0) - (a.summary.started_at || 0);
  });
  $("no-calls").hidden = items.length > 0;
  for (const c of items) {
    const s = c.summary;
    const li = el("li", `call-item${s.call_id === selected ? " selected" : ""}${s.state === "ended" ? " ended" : ""}`);
    li.dataset.testid = "call-item";
    li.dataset.callId = s.call_id;
    const row = el("div", "row");
    const caller = s.caller || {};
    row.append(el("span", "who", caller.name || caller.from || `Anruf ${s.call_id.slice(0, 8)}`), stateBadge(s));
    const wrap = c.wrapup ? ` · ${c.wrapup.label || c.wrapup.code}` : "";
    const sub = el("div", "sub", `${clock(s.started_at)} · ${intentName((c.intent && c.intent.label) || s.intent)}${wrap}`);
    li.append(row, sub);
    li.addEventListener("click", () => select(s.call_id));
    list.append(li);
  }
  renderQueue();
  if (!selected || !calls.has(selected)) {
    const first = items.find((c) => c.summary.state !== "ended") || items[0];
    if (first) select(first.summary.call_id);
  }
}

function stateBadge(s) {
  if (s.handoff && s.state === "bot") return el("span", "badge badge-handoff", "Übergabe");
  return el("span", `badge badge-${s.state || "bot"}`, STATES[s.state] || s.state);
}

function select(id) {
  selected = id;
  for (const li of document.querySelectorAll(".call-item")) li.classList.toggle("selected", li.dataset.callId === id);
  renderDetail();
}

function renderHead() {
  const c = calls.get(selected);
  if (!c) return;
  const s = c.summary;
  $("d-title").textContent = `Gespräch ${s.call_id}`;
  const caller = Object.entries(s.caller || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
  $("d-meta").textContent = [clock(s.started_at), s.protocol, caller].filter(Boolean).join(" · ");
  const badge = stateBadge(s);
  $("d-state").className = badge.className;
  $("d-state").textContent = badge.textContent;
  $("btn-takeover").hidden = s.state !== "bot";
  $("btn-release").hidden = !(s.state === "human" && s.agent_id === agentId);
  renderVoice();
  const urgent = c.intent && URGENT.has(c.intent.label);
  $("alert").hidden = !urgent;
  if (urgent) {
    $("alert").textContent = c.intent.label === "notfall"
      ? "Notfall: sofort übernehmen. Bei Gefahr für Leib und Leben: Notruf 112."
      : "Krise: ruhig übernehmen. Telefonseelsorge 0800 111 0 111 / 0800 111 0 222 (kostenfrei, rund um die Uhr).";
  }
}

function renderDetail() {
  const c = calls.get(selected);
  $("detail").hidden = !c;
  $("empty").hidden = !!c;
  if (!c) return;
  renderHead();
  renderTranscript(c);
  renderIntent(c);
  renderSlots(c);
  renderSuggestions(c);
  renderSteps(c);
  renderHandoff(c);
  AgentDesk.renderWrapup(c, wrapupCodes, agentId);
}

function renderQueue() {
  AgentDesk.renderQueue($("queue"), $("no-queue"), calls, intentName, select);
}

// ------------------------------------------------------------------ the agent's voice
async function startVoice(callId) {
  try {
    await voice.start(callId);
  } catch (err) {
    voice.stop();
    flash(`Mikrofon: ${err.message || err}`);
  }
  renderVoice();
}

function renderVoice() {
  const c = calls.get(selected);
  const mine = !!c && c.summary.state === "human" && c.summary.agent_id === agentId;
  const live = mine && voice.open && voice.callId === selected;
  $("btn-mic").hidden = !mine;
  $("btn-mic").textContent = live ? "Mikrofon aus" : "Mikrofon an";
  $("voice").hidden = !mine;
  $("voice").textContent = live ? "Mikrofon an · Anrufer hörbar" : "Mikrofon aus";
  $("voice").className = `pill ${live ? "pill-on" : "pill-off"}`;
}

function renderTranscript(c) {
  const list = $("transcript");
  list.replaceChildren();
  for (const line of c.lines) {
    const li = el("li", `line line-${line.who}`);
    if (line.who !== "system") li.append(el("span", "who", `${SPEAKERS[line.who]} · ${clock(line.ts)}`));
    li.append(el("span", "text", line.text));
    li.dataset.testid = line.who === "caller" ? "final" : line.who === "agent" ? "agent-final" : line.who;
    list.append(li);
  }
  if (c.agentPartial) {
    const li = el("li", "line line-agent line-partial");
    li.dataset.testid = "agent-partial";
    li.append(el("span", "who", "Mitarbeiter spricht …"), el("span", "text", c.agentPartial));
    list.append(li);
  }
  renderPartial();
}

function renderPartial() {
  const c = calls.get(selected);
  let node = $("partial");
  if (!c || !c.partial) { if (node) node.remove(); return; }
  if (!node) {
    node = el("li", "line line-caller line-partial");
    node.id = "partial";
    node.dataset.testid = "partial";
    node.append(el("span", "who", "Anrufer spricht …"), el("span", "text"));
    $("transcript").append(node);
  }
  node.querySelector(".text").textContent = c.partial;
  node.scrollIntoView({ block: "nearest" });
}

$("btn-takeover").addEventListener("click", () => send({ type: "takeover", call_id: selected }));
$("btn-release").addEventListener("click", () => send({ type: "release", call_id: selected }));
$("btn-mic").addEventListener("click", () => {
  if (voice.callId === selected) { send({ type: "audio.stop", call_id: selected }); voice.stop(); renderVoice(); }
  else startVoice(selected);
});
$("wrapup-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  send({ type: "wrapup", call_id: selected, code: $("wrapup-code").value, note: $("wrapup-note").value.trim() });
});
setInterval(renderQueue, 1000); // waiting times tick

function flash(text) {
  $("alert").hidden = false;
  $("alert").textContent = text;
  setTimeout(() => renderHead(), 4000);
}

connect();
