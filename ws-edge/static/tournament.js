// A tournament draw (LCT): create, join, choose a team, the draw live.
"use strict";

// ---- tournament (LCT draw) ---------------------------------------------
// Who this page acts as: the token's subject.
const me = (() => { try { return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub; } catch (e) { return null; } })();
function onTournament(f) {
  if (f.type === "snapshot") {
    state.tInfo = f.tournament; state.tPlayers = new Map(f.players.map((p) => [p.user, p])); state.tDraw = f.draw;
  } else if (f.type === "delta") {
    if (f.tournament) state.tInfo = f.tournament;
    for (const p of f.players) state.tPlayers.set(p.user, p);
    if (f.draw) state.tDraw = f.draw;
    for (const o of f.outcomes) if (o.user === me && o.refused) $("t-msg").textContent = `${o.kind} refused: ${o.refused.replace(/_/g, " ")}`;
  } else return;
  state.tSeq = f.seq;
  drawTournament();
}
function drawTournament() {
  const t = state.tInfo, players = [...state.tPlayers.values()].sort((a, b) => a.place - b.place);
  $("t-info").textContent = t ? `${t.name} · by ${t.organiser} · ${players.length}/${t.player_limit} players · ${t.state} · v${t.version}` : "no tournament yet";
  $("t-players").replaceChildren(...players.map((p) => el("li", { "data-user": p.user }, `${p.display_name}${p.team ? " — " + p.team : " (choosing…)"}`)));
  $("t-draw").replaceChildren(...(state.tDraw ? state.tDraw.assignments : []).map((a) => {
    const name = state.tPlayers.get(a.user)?.display_name || a.user;
    return el("li", { "data-user": a.user, "data-team": a.team }, `${name} plays ${a.team}`);
  }));
  $("t-draw").dataset.seed = state.tDraw ? state.tDraw.seed : "";
  const open = t && t.state === "open";
  for (const id of ["t-name", "t-team"]) $(id).disabled = !token || !open;
  $("t-close").hidden = !(open && t.organiser === me);
}
function pickTournament(id) {
  if (state.tPicked === id) return;
  if (state.tPicked) send({ type: "unsubscribe", view: "tournament", id: state.tPicked });
  state.tournament = state.tPicked = id; state.tSeq = 0; state.tInfo = null; state.tPlayers = new Map(); state.tDraw = null;
  const link = `${location.origin}/?tournament=${encodeURIComponent(id)}`;
  $("t-qr").src = `/api/tournaments/${encodeURIComponent(id)}/qr.svg`; $("t-qr").hidden = false;
  $("t-link").href = link; $("t-link").textContent = link;
  send({ type: "subscribe", view: "tournament", id });
  drawTournament();
}
async function act(path, body) {
  if (!token) { $("t-msg").textContent = "open this page with #token=… to take part"; return null; }
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  const answer = await r.json().catch(() => ({}));
  $("t-msg").textContent = r.ok ? (r.status === 202 ? "queued…" : "done") : answer.error || r.statusText;
  return r.ok ? answer : null;
}
const onAct = (form, path, body) => { $(form).onsubmit = (e) => { e.preventDefault(); if (state.tournament) act(`/api/tournaments/${encodeURIComponent(state.tournament)}/${path}`, body()); }; };
onAct("t-join", "join", () => ({ display_name: $("t-name").value.trim() }));
onAct("t-choose", "choose", () => ({ team: $("t-team").value.trim() }));
onAct("t-close", "close", () => ({}));
$("t-create").onsubmit = async (e) => {
  e.preventDefault();
  const id = $("t-new-id").value.trim();
  if (await act("/api/tournaments", { id, name: $("t-new-name").value.trim(), player_limit: Number($("t-new-limit").value) })) { await loadTournaments(); $("tournament").value = id; pickTournament(id); }
};
async function loadTournaments() {
  const list = await (await fetch("/api/tournaments")).json();
  const ts = $("tournament");
  ts.replaceChildren(...list.map((t) => new Option(`${t.name} (${t.players}/${t.player_limit})`, t.id)));
  if (state.tournament && list.some((t) => t.id === state.tournament)) { ts.value = state.tournament; pickTournament(state.tournament); }
  else if (!state.tournament && list.length) { ts.value = list[0].id; pickTournament(ts.value); }
}
$("tournament").onchange = () => pickTournament($("tournament").value);
