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

const calls = new Map(); // call_id -> {summary, lines, partial, intent, slots, suggestions, steps, handoff}
let selected = null;
let ws = null;
let agentId = "";
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
  ws.onopen = () => {
    ws.send(JSON.stringify({ type: "auth", token: tok, agent: sessionStorage.getItem("voicebot.agent") || undefined }));
  };
  ws.onmessage = (msg) => { try { onMessage(JSON.parse(msg.data)); } catch (e) { console.error(e); } };
  ws.onclose = (ev) => {
    setConn(false);
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
    calls.set(id, { summary: { call_id: id, state: "bot" }, lines: [], partial: null, intent: null, slots: {},
      suggestions: [], steps: [], handoff: null });
  }
  return calls.get(id);
}

function onMessage(m) {
  stats[m.type] = (stats[m.type] || 0) + 1;
  switch (m.type) {
    case "auth.ok":
      agentId = m.agent_id; $("agent-name").textContent = agentId; setConn(true);
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
      Object.assign(c, { lines: [], partial: null, intent: null, slots: {}, suggestions: [], steps: [], handoff: null });
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
    default:
      if (!m.call_id) return;
      apply(callState(m.call_id), m);
      if (m.call_id === selected) {
        if (m.type === "transcript.partial") renderPartial(); else renderDetail();
      }
  }
}

function apply(c, ev) {
  switch (ev.type) {
    case "transcript.partial": c.partial = ev.text; break;
    case "transcript.final":
      c.partial = null;
      if ((ev.text || "").trim()) c.lines.push({ who: "caller", text: ev.text, ts: ev.ts });
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
    const sub = el("div", "sub", `${clock(s.started_at)} · ${intentName((c.intent && c.intent.label) || s.intent)}`);
    li.append(row, sub);
    li.addEventListener("click", () => select(s.call_id));
    list.append(li);
  }
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
}

function renderTranscript(c) {
  const list = $("transcript");
  list.replaceChildren();
  for (const line of c.lines) {
    const li = el("li", `line line-${line.who}`);
    if (line.who !== "system") li.append(el("span", "who", `${line.who === "bot" ? "Bot" : "Anrufer"} · ${clock(line.ts)}`));
    li.append(el("span", "text", line.text));
    li.dataset.testid = line.who === "caller" ? "final" : line.who;
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

function renderIntent(c) {
  const box = $("intent");
  box.replaceChildren();
  if (!c.intent) { box.append(el("span", "muted", "noch nicht erkannt")); return; }
  const label = el("div", "intent-label", intentName(c.intent.label));
  label.dataset.testid = "intent-label";
  label.dataset.label = c.intent.label;
  const bar = el("div", "bar");
  const fill = el("span");
  fill.style.width = pct(c.intent.confidence).replace(" ", "");
  bar.append(fill);
  const runners = el("ul", "runners");
  for (const alt of (c.intent.alternatives || []).slice(0, 3)) {
    runners.append(el("li", "", `${intentName(alt.label)} ${pct(alt.confidence)}`));
  }
  box.append(label, el("div", "muted", `Sicherheit ${pct(c.intent.confidence)}`), bar, runners);
}

function renderSlots(c) {
  const table = $("slots");
  table.replaceChildren();
  const entries = Object.entries(c.slots);
  $("no-slots").hidden = entries.length > 0;
  for (const [key, value] of entries) {
    const tr = el("tr");
    tr.append(el("td", "", SLOTS[key] || key), el("td", "", value));
    table.append(tr);
  }
}

function renderSuggestions(c) {
  const list = $("suggestions");
  list.replaceChildren();
  $("no-suggestions").hidden = c.suggestions.length > 0;
  for (const s of c.suggestions) {
    const li = el("li");
    li.append(el("div", "title", s.title), el("div", "", s.answer));
    list.append(li);
  }
}

function renderSteps(c) {
  const list = $("next-steps");
  list.replaceChildren();
  $("no-steps").hidden = c.steps.length > 0;
  for (const step of c.steps) list.append(el("li", "", step));
}

function renderHandoff(c) {
  $("handoff-card").hidden = !c.handoff;
  const box = $("handoff");
  box.replaceChildren();
  if (!c.handoff) return;
  const ctx = c.handoff.context || {};
  box.append(el("div", "", `Grund: ${c.handoff.reason || "–"}`));
  if (ctx.summary) box.append(el("p", "", ctx.summary));
}

$("btn-takeover").addEventListener("click", () => send({ type: "takeover", call_id: selected }));
$("btn-release").addEventListener("click", () => send({ type: "release", call_id: selected }));

function flash(text) {
  $("alert").hidden = false;
  $("alert").textContent = text;
  setTimeout(() => renderHead(), 4000);
}

connect();
