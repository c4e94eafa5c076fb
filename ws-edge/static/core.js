// The page's shared state and helpers, and its one WebSocket (PROTOCOL.md):
// connect, resume, and hand each frame to its view.
"use strict";

// One WebSocket for everything (PROTOCOL.md): the race, the room, tasks, the tournament.
const $ = (id) => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";
// The access token: from the link (#token=…), or the last login; refreshed
// in place by account.js.
let token = new URLSearchParams(location.hash.slice(1)).get("token") || localStorage.getItem("pace-token") || "";
if (token) localStorage.setItem("pace-token", token);

const state = {
  race: null, definition: null, seq: 0, rows: new Map(), splits: new Map(), changed: new Set(), leader: null,
  counts: new Map(), windowed: false, window: null, asked: null, mostRows: 0, followed: new Map(), followedSplits: new Map(),
  filter: null, filtered: null, filteredTotal: 0,
  room: null, roomSeq: 0, messages: [], conversations: new Map(), unread: new Map(), readSent: new Map(),
  tasks: new Map(),
  tournament: new URLSearchParams(location.search).get("tournament"), tPicked: null, tSeq: 0, tInfo: null, tPlayers: new Map(), tDraw: null,
  socket: null, retry: 500, connects: 0, resumes: 0, snapshots: 0,
};
window.pace = state; // for tests and the curious

const dist = (m) => (m < 1000 ? m.toFixed(0) + " m" : (m / 1000).toFixed(2) + " km");
const secs = (s) => (s < 60 ? s.toFixed(1) + " s" : `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`);
function progress(r) {
  const parts = [];
  if (r.leg != null) parts.push(`leg ${r.leg}`);
  if (r.laps != null) parts.push(`${r.laps} laps`);
  if (r.distance_m > 0 || parts.length === 0) parts.push(dist(r.distance_m));
  return parts.join(" · ");
}
// The distance gap is the leader's distance minus the row's: the frames
// carry the leader, not a gap in every row (a leader's step changes no row).
function gap(r) {
  if (r.rank === 1) return "—";
  if (r.gap_s != null) return "+" + secs(r.gap_s);
  const lead = state.leader?.distance_m;
  return lead != null ? "+" + dist(Math.max(0, lead - r.distance_m)) : "";
}
function paceOf(r) {
  if (r.speed_mps != null) return (r.speed_mps * 3.6).toFixed(1) + " km/h";
  return r.last_lap_s != null ? secs(r.last_lap_s) + "/lap" : "";
}
function el(tag, attrs = {}, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

// ---- connection -------------------------------------------------------
function send(frame) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(frame));
}
// A race of more than WHOLE participants is watched through a window of
// its ranking (PROTOCOL.md, "Windows"): the rows in view and a screenful on
// either side; scrolling the leaderboard moves the window.
const WHOLE = 500;
function subscribeRace() {
  if (!state.race) return;
  if (state.windowed) send({ type: "subscribe", view: "race", id: state.race, window: state.asked ||= { from: 1, to: 60 } });
  else send({ type: "subscribe", view: "race", id: state.race, ...(state.seq ? { since: state.seq } : {}) });
}
function subscribeAll() {
  subscribeRace();
  for (const p of state.followed.keys()) send({ type: "subscribe", view: "participant", id: state.race, participant: p });
  if (state.room) {
    send({ type: "subscribe", view: "room", id: state.room, ...(state.roomSeq ? { since: state.roomSeq } : {}) });
    // The room may have been picked before this socket opened, when its
    // join had nowhere to go: join (again: it is one membership) to post.
    if (token) send({ type: "join", room: state.room });
  }
  for (const [id, t] of state.tasks) if (t.status === "PENDING") send({ type: "subscribe", view: "task", id });
  if (state.tPicked) send({ type: "subscribe", view: "tournament", id: state.tPicked });
}
function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws` + (token ? `?token=${encodeURIComponent(token)}` : "");
  const ws = state.socket = new WebSocket(url);
  ws.onopen = () => { state.retry = 500; state.connects += 1; subscribeAll(); status(); };
  ws.onmessage = (ev) => onFrame(JSON.parse(ev.data));
  ws.onclose = () => {
    if (ws !== state.socket) return;
    $("status").textContent = "reconnecting…";
    setTimeout(connect, state.retry); state.retry = Math.min(state.retry * 2, 10000);
  };
}
setInterval(() => send({ type: "ping" }), 20000);

function onFrame(f) {
  if (f.type === "error") { $("status").textContent = `${f.code}: ${f.message}`; return; }
  if (f.type === "reconnect") { state.retry = f.after_ms || 1000; return; }
  if (f.view === "race" && f.id === state.race) onRace(f);
  else if (f.view === "participant" && f.id === state.race) onParticipant(f);
  else if (f.view === "room" && f.id === state.room) onRoom(f);
  else if (f.view === "task") onTask(f);
  else if (f.view === "tournament" && f.id === state.tournament) onTournament(f);
}
