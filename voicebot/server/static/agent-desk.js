// voicebot agent page: the queue of calls waiting for a person, the wrap-up after a call, the side cards.
// Rendering only; agent.js owns the connection and the call state. Text goes in with textContent.
"use strict";

const QUEUE_FIRST = ["notfall", "pannenhilfe"]; // then every other priority route, then waiting time

const AgentDesk = {
  // Calls handed off by the bot and not yet taken: most urgent first, then the longest wait.
  queue(calls) {
    const waiting = [...calls.values()].filter((c) => c.handoff && c.summary.state === "bot");
    const rank = (c) => {
      const label = (c.intent && c.intent.label) || c.summary.intent
        || ((c.handoff.context || {}).intent || {}).label;
      const first = QUEUE_FIRST.indexOf(label);
      if (first >= 0) return first;
      return (c.handoff.context || {}).priority ? QUEUE_FIRST.length : QUEUE_FIRST.length + 1;
    };
    return waiting.sort((a, b) => rank(a) - rank(b) || (a.handoff.ts || 0) - (b.handoff.ts || 0))
      .map((c) => ({ call: c, urgent: rank(c) < QUEUE_FIRST.length }));
  },

  renderQueue(list, empty, calls, intentName, onSelect) {
    list.replaceChildren();
    const rows = AgentDesk.queue(calls);
    empty.hidden = rows.length > 0;
    const now = Date.now() / 1000;
    for (const { call, urgent } of rows) {
      const s = call.summary;
      const li = document.createElement("li");
      li.className = "call-item";
      li.dataset.testid = "queue-item";
      li.dataset.callId = s.call_id;
      const head = document.createElement("div");
      head.className = `row${urgent ? " prio" : ""}`;
      const wait = Math.max(0, Math.round(now - (call.handoff.ts || now)));
      head.textContent = `${intentName((call.intent && call.intent.label) || s.intent)} · wartet ${Math.floor(wait / 60)}:${String(wait % 60).padStart(2, "0")}`;
      const sub = document.createElement("div");
      sub.className = "sub";
      sub.textContent = (call.handoff.context || {}).summary || `Grund: ${call.handoff.reason || "–"}`;
      li.append(head, sub);
      li.addEventListener("click", () => onSelect(s.call_id));
      list.append(li);
    }
  },

  // The wrap-up card: shown to the agent who took the call over; the stored wrap-up once saved.
  renderWrapup(c, codes, agentId) {
    const mine = c && c.summary.agent_id === agentId && agentId;
    document.getElementById("wrapup-card").hidden = !mine;
    if (!mine) return;
    const select = document.getElementById("wrapup-code");
    if (select.options.length !== codes.length) {
      select.replaceChildren(...codes.map((w) => {
        const opt = document.createElement("option");
        opt.value = w.code;
        opt.textContent = w.label;
        return opt;
      }));
    }
    const done = document.getElementById("wrapup-done");
    done.hidden = !c.wrapup;
    if (c.wrapup) done.textContent = `Gespeichert: ${c.wrapup.label || c.wrapup.code}${c.wrapup.note ? ` – ${c.wrapup.note}` : ""}`;
  },
};
window.AgentDesk = AgentDesk;

// ------------------------------------------------------------------ the side cards of one call
// (Globals of agent.js: el, $, pct, intentName, SLOTS; called only once every script has loaded.)
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
