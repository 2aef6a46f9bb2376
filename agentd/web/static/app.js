// agentd web app: chat with a streamed reply, Mind saves, approvals, notices, the cache plots.
"use strict";
const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function post(url, data) {
  const body = new URLSearchParams(data);
  const r = await fetch(url, {method: "POST", body, headers: {"X-CSRF-Token": csrf(), "Accept": "application/json"}});
  let json = {};
  try { json = await r.json(); } catch (e) { json = {error: r.statusText}; }
  return {ok: r.ok, status: r.status, json};
}

function chat() {
  const form = document.getElementById("chat-form");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = document.getElementById("chat-text").value;
    const live = document.getElementById("chat-live");
    const turn = document.createElement("div");
    turn.className = "turn";
    const mine = document.createElement("blockquote");
    mine.textContent = text;
    const answer = document.createElement("div");
    answer.className = "reply streaming";
    answer.textContent = "…";
    turn.append(mine, answer);
    live.prepend(turn);
    const r = await post("/chat/send", {text});
    if (!r.ok) { answer.textContent = "Not sent: " + (r.json.error || r.status); answer.className = "reply error"; return; }
    form.reset();
    answer.dataset.id = r.json.id;
    let streamed = "";
    const es = new EventSource("/chat/stream/" + r.json.id);
    es.addEventListener("delta", (e) => { streamed += JSON.parse(e.data); answer.textContent = streamed; });
    es.addEventListener("reply", (e) => {
      const note = JSON.parse(e.data);
      answer.textContent = note.reply || note.error || streamed || ("(" + note.status + ")");
      answer.className = "reply done " + note.status;
      es.close();
    });
    es.addEventListener("timeout", () => es.close());
  });
}

function mind() {
  const form = document.getElementById("mind-form");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = document.getElementById("mind-result");
    const r = await post("/mind/save", Object.fromEntries(new FormData(form)));
    out.textContent = r.ok ? r.json.message : (r.json.error || r.status);
    out.className = "result " + (r.ok ? "ok" : "error");
  });
}

function buttons() {
  document.querySelectorAll("button.approve, button.deny").forEach((b) => b.addEventListener("click", async () => {
    const out = document.getElementById("result-" + b.dataset.id);
    out.textContent = "…";
    const r = await post(`/approvals/${b.dataset.id}/${b.dataset.verb}`, {});
    out.textContent = r.ok ? r.json.result : (r.json.error || r.status);
    out.className = "result " + (r.ok ? "ok" : "error");
  }));
  document.querySelectorAll("button.ack").forEach((b) => b.addEventListener("click", async () => {
    const r = await post("/notices/ack", {id: b.dataset.id});
    if (r.ok) location.reload();
  }));
}

function plots() {
  const el = document.getElementById("cache-data");
  if (!el || typeof uPlot === "undefined") return;
  const data = JSON.parse(el.textContent);
  const width = Math.min(900, document.querySelector("main").clientWidth - 20);
  const wakes = document.getElementById("plot-wakes");
  if (data.wakes.t.length) {
    // x is the wake's number (its time and commit are in the legend): wakes bunch up in time.
    const n = data.wakes.t.length, xs = data.wakes.t.map((_, i) => i + 1);
    new uPlot({width, height: 220, scales: {x: {time: false, range: [0.5, n + 0.5]}, y: {range: [0, 100]}},
      series: [{label: "wake", value: (u, v) => v == null ? "--" : data.wakes.label[v - 1] || v},
               {label: "hit rate %", stroke: "#2a7", width: 2, points: {show: true, size: 7}}],
      axes: [{label: "wake", incrs: [1, 2, 5, 10, 20, 50, 100]}, {label: "%"}]}, [xs, data.wakes.hit_rate], wakes);
  } else { wakes.textContent = "No wakes with token counts yet."; }
  const days = document.getElementById("plot-days");
  if (data.days.t.length) {
    const n = data.days.t.length, xs = data.days.t.map((_, i) => i + 1), day = (v) => data.days.day[v - 1] || "";
    new uPlot({width, height: 220, scales: {x: {time: false, range: [0.5, n + 0.5]}, pct: {range: [0, 100]}},
      series: [{label: "day", value: (u, v) => v == null ? "--" : day(v)},
               {label: "hit rate %", stroke: "#2a7", scale: "pct", points: {show: true, size: 7}},
               {label: "computed tokens", stroke: "#c53", points: {show: true, size: 7}}],
      axes: [{incrs: [1, 2, 7, 14, 30], values: (u, vals) => vals.map(day)}, {scale: "pct", label: "%"},
             {side: 1, label: "tokens", grid: {show: false}}]},
      [xs, data.days.hit_rate, data.days.computed], days);
  } else { days.textContent = "No engine requests in the ledger yet."; }
}

document.addEventListener("DOMContentLoaded", () => { chat(); mind(); buttons(); plots(); });
