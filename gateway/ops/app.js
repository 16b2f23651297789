// The operators' dashboard: reads the JSON API with the key entered once (kept for this tab
// only), refreshes every five seconds, and lets an admin replay or discard dead letters.
"use strict";
const $ = (s) => document.querySelector(s);
let key = sessionStorage.getItem("hcc-key") || "";

async function api(method, path) {
  const r = await fetch(path, { method, headers: { Authorization: "Bearer " + key } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { const e = new Error(body.detail || ("HTTP " + r.status)); e.status = r.status; throw e; }
  return body;
}

function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }

function spark(points) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark"); svg.setAttribute("viewBox", "0 0 160 28");
  if (points.length > 1) {
    const max = Math.max(1, ...points);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.map((v, i) => `${(i / (points.length - 1)) * 160},${27 - (v / max) * 26}`).join(" "));
    svg.appendChild(line);
  }
  return svg;
}

async function act(method, path, label) {
  try { await api(method, path); $("#action-result").textContent = label; }
  catch (e) { $("#action-result").textContent = e.status === 403 ? "This key may only watch: replay and discard need an admin key." : "Failed: " + e.message; }
  refresh();
}

async function refresh() {
  try {
    const [{ queues }, history, { entries }] = await Promise.all([api("GET", "/v1/queues"), api("GET", "/v1/queues/history"), api("GET", "/v1/audit?limit=15")]);
    const qb = $("#queues tbody"); qb.replaceChildren();
    const dead = [];
    for (const q of queues) {
      const tr = document.createElement("tr");
      tr.append(cell(q.name), cell(q.ready, "num"), cell(q.scheduled, "num"), cell(q.in_flight, "num"), cell(q.dead, q.dead ? "num alert" : "num"),
        cell(q.blocked, "num"), cell(q.delivered_total, "num"), cell(q.oldest_ready_age_seconds.toFixed(1) + " s", "num"), cell(q.paused ? "PAUSED" : "no", q.paused ? "alert" : ""),
        cell(q.breaker || "-", q.breaker || ""));
      const td = document.createElement("td");
      td.appendChild(spark(history.samples.map((s) => (s.queues[q.name] || {}).waiting || 0)));
      tr.appendChild(td); qb.appendChild(tr);
      if (q.dead > 0) { for (const d of (await api("GET", `/v1/queues/${encodeURIComponent(q.name)}/dead?limit=50`)).dead) dead.push([q.name, d]); }
    }
    const db = $("#dead tbody"); db.replaceChildren();
    $("#dead-empty").hidden = dead.length > 0; $("#dead").hidden = dead.length === 0;
    for (const [qn, d] of dead) {
      const tr = document.createElement("tr"); tr.dataset.id = d.id;
      tr.append(cell(qn), cell(d.id), cell(d.kind), cell(d.ordering_key), cell(d.attempts, "num"), cell(d.last_error || ""));
      const td = document.createElement("td");
      const replay = document.createElement("button"); replay.textContent = "Replay";
      replay.onclick = () => act("POST", `/v1/queues/${encodeURIComponent(qn)}/dead/${encodeURIComponent(d.id)}/replay`, `Replayed ${d.id}`);
      const discard = document.createElement("button"); discard.textContent = "Discard"; discard.className = "danger";
      discard.onclick = () => { if (confirm(`Discard ${d.id} for good?`)) act("DELETE", `/v1/queues/${encodeURIComponent(qn)}/dead/${encodeURIComponent(d.id)}`, `Discarded ${d.id}`); };
      td.append(replay, " ", discard); tr.appendChild(td); db.appendChild(tr);
    }
    const ab = $("#audit"); ab.replaceChildren();
    for (const e of entries) { const li = document.createElement("li"); li.textContent = `${e.at}  ${e.actor}  ${e.action}  ${e.target}${e.detail ? "  " + e.detail : ""}`; ab.appendChild(li); }
    $("#status").textContent = "updated " + new Date().toLocaleTimeString(); $("#status").className = "";
  } catch (e) {
    $("#status").textContent = e.status === 401 ? "key refused" : "cannot load: " + e.message; $("#status").className = "error";
    if (e.status === 401) { sessionStorage.removeItem("hcc-key"); key = ""; show(); }
  }
}

function show() { $("#login").hidden = !!key; $("#board").hidden = !key; if (key) refresh(); }

$("#key-form").addEventListener("submit", (ev) => { ev.preventDefault(); key = $("#key").value.trim(); sessionStorage.setItem("hcc-key", key); show(); });
$("#forget").addEventListener("click", () => { sessionStorage.removeItem("hcc-key"); key = ""; show(); });
setInterval(() => { if (key) refresh(); }, 5000);
show();
