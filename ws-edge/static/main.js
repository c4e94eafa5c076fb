// The pickers of races, rooms and tournaments, kept fresh; then the
// page starts. Loaded last.
"use strict";

// ---- pickers ----------------------------------------------------------
async function pickRace(id) {
  if (state.race) send({ type: "unsubscribe", view: "race", id: state.race });
  if (state.race !== id) {
    for (const p of state.followed.keys()) send({ type: "unsubscribe", view: "participant", id: state.race, participant: p });
    state.followed = new Map();
    state.followedSplits = new Map();
  }
  state.race = id; state.seq = 0; state.rows = new Map(); state.splits = new Map(); state.leader = null;
  state.windowed = (state.counts.get(id) || 0) > WHOLE; state.window = null; state.asked = null;
  document.querySelector(".board").scrollTop = 0;
  $("gender").value = ""; $("category").value = ""; state.filter = null; state.filtered = null;
  state.definition = await (await fetch(`/api/races/${encodeURIComponent(id)}`)).json();
  drawMap();
  subscribeRace();
  loadGroups();
}
async function loadPickers() {
  try {
    const races = await (await fetch("/api/races")).json();
    state.counts = new Map(races.map((r) => [r.id, r.participants]));
    // A race that grew past WHOLE is watched through a window from now on.
    if (state.race && !state.windowed && (state.counts.get(state.race) || 0) > WHOLE) await pickRace(state.race);
    const sel = $("race");
    sel.replaceChildren(...races.map((r) => new Option(`${r.name} (${r.participants})`, r.id)));
    if (state.race && races.some((r) => r.id === state.race)) sel.value = state.race;
    else if (races.length) { sel.value = races[races.length - 1].id; await pickRace(sel.value); }
    await loadGroups();
    // With a token, the invite-only rooms this user is in are listed too,
    // and their direct conversations (by whom they are with).
    const auth = token ? { headers: { authorization: `Bearer ${token}` } } : {};
    const rooms = await (await fetch("/api/rooms", auth)).json();
    const talks = token ? await (await fetch("/api/conversations", auth)).json() : [];
    state.conversations = new Map(talks.map((c) => [c.id, c.with]));
    // What this user has not read in each room they are in (their read
    // markers, kept by the rooms job: the same on any edge).
    const mine = token ? await (await fetch("/api/me/rooms", auth)).json() : [];
    state.unread = new Map(mine.map((r) => [r.id, r.unread]));
    const badge = (id) => (state.unread.get(id) ? ` • ${state.unread.get(id)} new` : "");
    const label = (r) => (state.conversations.has(r.id) ? `✉ ${state.conversations.get(r.id)}` : `${r.id} (${r.members})`) + badge(r.id);
    const rs = $("room");
    rs.replaceChildren(...rooms.map((r) => new Option(label(r), r.id)));
    if (state.room && rooms.some((r) => r.id === state.room)) rs.value = state.room;
    else if (rooms.length) { rs.value = (rooms.find((r) => r.visibility !== "direct") || rooms[0]).id; pickRoom(rs.value); }
    await loadTournaments();
  } catch (e) { $("status").textContent = "waiting for pace…"; }
}
$("race").onchange = () => pickRace($("race").value);
$("room").onchange = () => pickRoom($("room").value);
connect();
loadPickers(); setInterval(loadPickers, 5000);
