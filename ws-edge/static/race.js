// A race: the leaderboard (whole, or a window of a big one), gender and
// category filters, followed runners with their splits, projected finish
// and where they are between mats, and finding a runner.
"use strict";

// ---- race -------------------------------------------------------------
function onRace(f) {
  if (f.window) state.window = f.window;
  const rows = f.rows || f.upserts;
  if (rows) state.mostRows = Math.max(state.mostRows, rows.length);
  if (f.type === "snapshot") {
    state.rows = new Map(f.rows.map((r) => [r.participant, r]));
    state.leader = f.leader || null;
    state.splits = new Map();
    addSplits(f.splits);
    state.changed = new Set(); state.snapshots += 1;
  } else if (f.type === "resumed") {
    // The missed deltas since+1 … seq follow: continue from `since`.
    state.resumes += 1;
    state.seq = f.since;
    return;
  } else if (f.type === "delta") {
    if (!f.window && f.seq !== state.seq + 1) { // cannot happen on one connection; resubscribe to be safe
      state.seq = 0; send({ type: "unsubscribe", view: "race", id: state.race }); send({ type: "subscribe", view: "race", id: state.race }); return;
    }
    for (const p of f.removes) { state.rows.delete(p); state.splits.delete(p); }
    for (const r of f.upserts) { state.rows.set(r.participant, r); state.changed.add(r.participant); }
    if (f.leader) state.leader = f.leader;
    for (const k of f.split_removes || []) state.splits.get(k.participant)?.delete(k.split);
    addSplits(f.splits || []);
  } else {
    return; // unsubscribed: no seq of its own
  }
  state.seq = f.seq;
  refreshFiltered();
  // A race that outgrew WHOLE while taken whole (it was small when picked:
  // its runners had not started) is watched through a window from now on.
  if (!state.windowed && state.rows.size > WHOLE) {
    state.windowed = true; state.window = null; state.asked = null;
    subscribeRace();
  }
  schedule();
}
function addSplits(splits) {
  for (const s of splits) {
    if (!state.splits.has(s.participant)) state.splits.set(s.participant, new Map());
    state.splits.get(s.participant).set(s.split, s.position);
  }
}
let pending = false;
function schedule() { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; render(); }); } }
// The height of a leaderboard row, px (the spacers of a window are made of it).
function rowHeight() { return $("rows").querySelector("tr:not(.pad)")?.getBoundingClientRect().height || 30; }
// The ranks in view; asks for a window around them when they leave the one held.
function follow() {
  if (!state.windowed || !state.race) return;
  const board = document.querySelector(".board"), h = rowHeight();
  const head = $("rows").getBoundingClientRect().top - board.getBoundingClientRect().top + board.scrollTop;
  const first = Math.max(1, Math.floor((board.scrollTop - head) / h) + 1);
  const last = first + Math.ceil(board.clientHeight / h);
  const w = state.asked;
  if (w && w.from <= first && last <= w.to) return;
  const span = Math.min(240, 2 * (last - first + 1));
  const from = Math.max(1, first - Math.floor(span / 4));
  state.asked = { from, to: from + span - 1 };
  send({ type: "subscribe", view: "race", id: state.race, window: state.asked });
}
let following = false;
document.querySelector(".board").addEventListener("scroll", () => {
  if (!following) { following = true; requestAnimationFrame(() => { following = false; follow(); }); }
});
function spacer(n) {
  const tr = el("tr", { class: "pad" }), td = el("td", { colspan: 7 });
  td.style.height = `${Math.max(0, n) * rowHeight()}px`; tr.appendChild(td); return tr;
}
function render() {
  const sorted = [...state.rows.values()].sort((a, b) => a.rank - b.rank);
  const w = state.windowed && state.window;
  const before = w ? [spacer(w.from - 1)] : [], after = w ? [spacer(w.total - Math.max(w.to, w.from - 1))] : [];
  if (state.filter && state.filtered) $("rows").replaceChildren(...state.filtered.map(rowElement));
  else $("rows").replaceChildren(...before, ...sorted.map(rowElement), ...after);
  const followed = [...state.followed.values()].filter(Boolean).sort((a, b) => a.rank - b.rank);
  $("followed").replaceChildren(...followed.map(rowElement));
  $("following").hidden = state.followed.size === 0;
  renderFollowedSplits();
  state.changed = new Set();
  drawDots(sorted); drawChart(sorted);
  status();
}
function rowElement(r) {
  const tr = el("tr", { "data-participant": r.participant, title: "click to follow or unfollow" });
  tr.className = [state.changed.has(r.participant) ? "changed" : "", state.followed.has(r.participant) ? "me" : ""].join(" ").trim();
  // Filtered by gender or category: the place within it, the overall rank beside the name.
  const place = r.place != null ? r.place : r.rank;
  for (const [cls, text] of [["place", place], ["name", r.name], ["", progress(r)],
      ["", gap(r)], ["", paceOf(r)], ["status", statusName(r.status)],
      ["", new Date(r.last_seen).toLocaleTimeString()]]) {
    tr.appendChild(el("td", { class: cls }, text));
  }
  const tags = [r.category || r.gender, r.place != null ? `#${r.rank} overall` : null].filter(Boolean);
  if (tags.length) tr.querySelector(".name").appendChild(el("small", {}, tags.join(" · ")));
  return tr;
}
// In a chip-timed race a runner out of it (past a cutoff, or unseen for
// hours) did not finish.
function statusName(s) {
  if (s === "retired" && state.definition?.kind?.type === "mats") return "did not finish";
  return s.replaceAll("_", " ");
}
// ---- filters: a gender or a category of a big race --------------------
// The edge narrows the standings (GET /api/races/{id}/standings?gender=…):
// the first FILTERED rows of the group, each with its place in it, fetched
// again at most once a second while the race changes.
const FILTERED = 100;
let filterDue = 0, filterTimer = null;
function refreshFiltered() {
  if (!state.filter || filterTimer) return;
  filterTimer = setTimeout(async () => {
    filterTimer = null; filterDue = Date.now() + 1000;
    const f = state.filter, race = state.race;
    const q = new URLSearchParams({ ...f, from: 1, to: FILTERED });
    try {
      const res = await fetch(`/api/races/${encodeURIComponent(race)}/standings?${q}`);
      if (!res.ok || f !== state.filter || race !== state.race) return;
      state.filtered = await res.json();
      state.filteredTotal = Number(res.headers.get("x-pace-total") || 0);
      $("filter-status").textContent = `${Math.min(FILTERED, state.filteredTotal)} of ${state.filteredTotal}`;
      schedule();
    } catch (e) { /* the next change tries again */ }
  }, Math.max(0, filterDue - Date.now()));
}
function setFilter() {
  const g = $("gender").value, c = $("category").value;
  state.filter = g || c ? { ...(g ? { gender: g } : {}), ...(c ? { category: c } : {}) } : null;
  state.filtered = null; $("filter-status").textContent = "";
  document.querySelector(".board").scrollTop = 0;
  refreshFiltered(); schedule();
}
$("gender").onchange = setFilter; $("category").onchange = setFilter;
// The genders and categories the race's rows fall in (none: no filters shown).
async function loadGroups() {
  if (!state.race) return;
  try {
    const g = await (await fetch(`/api/races/${encodeURIComponent(state.race)}/groups`)).json();
    const fill = (id, all, label, groups) => {
      const sel = $(id), now = sel.value;
      sel.replaceChildren(new Option(all, ""), ...Object.entries(groups).map(([k, n]) => new Option(`${label}${k} (${n})`, k)));
      sel.value = now in groups ? now : "";
    };
    fill("gender", "all genders", "", g.genders);
    fill("category", "all categories", "", g.categories);
    $("filters").hidden = !Object.keys(g.genders).length && !Object.keys(g.categories).length;
  } catch (e) { /* shown again on the next try */ }
}
for (const id of ["gender", "category"]) $(id).addEventListener("focus", loadGroups);
// Followed participants: a `participant` subscription each, shown above the
// leaderboard wherever the window is (click a row to follow or unfollow).
function toggleFollow(p) {
  if (!p || !state.race) return;
  if (state.followed.has(p)) {
    state.followed.delete(p);
    state.followedSplits.delete(p);
    send({ type: "unsubscribe", view: "participant", id: state.race, participant: p });
  } else if (state.followed.size < 8) {
    state.followed.set(p, state.rows.get(p) || null);
    send({ type: "subscribe", view: "participant", id: state.race, participant: p });
  }
  schedule();
}
for (const id of ["rows", "followed"]) $(id).addEventListener("click", (e) => toggleFollow(e.target.closest("tr")?.dataset.participant));
function onParticipant(f) {
  if (!state.followed.has(f.participant) || f.seq === undefined) return;
  if (f.row) state.changed.add(f.participant);
  state.followed.set(f.participant, f.row);
  // Their splits with times: all of them in a snapshot, the changed ones in a delta.
  const held = f.type === "snapshot" ? new Map() : state.followedSplits.get(f.participant) || new Map();
  for (const s of f.splits || []) held.set(s.split, s);
  for (const k of f.split_removes || []) held.delete(k.split);
  state.followedSplits.set(f.participant, held);
  schedule();
}
// A time since the gun, h:mm:ss (in a chip-timed race a split's time is the
// gun plus the runner's net time there).
function sinceGun(t) {
  const s = Math.max(0, Math.round((Date.parse(t) - Date.parse(state.definition?.start)) / 1000));
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}
function splitName(k) {
  const kind = state.definition?.kind;
  if (kind?.type === "mats") return kind.mats[k]?.name || kind.mats[k]?.id || `split ${k}`;
  return `split ${k}`;
}
// The race's clock: the latest time anyone was seen (a replay's clock, not the wall's).
function raceClock() {
  let t = 0;
  for (const r of [...state.rows.values(), ...state.followed.values()]) if (r) t = Math.max(t, Date.parse(r.last_seen));
  return t;
}
// Where a chip-timed runner is between mats: their last mat's distance
// plus their latest pace (`speed_mps`) times the time since, short of the
// finish (VIEWS.md).
function projectedNow(row) {
  if (row?.status !== "racing" || row.speed_mps == null || state.definition?.kind?.type !== "mats") return null;
  const mats = state.definition.kind.mats, finish = mats[mats.length - 1].distance_m;
  const since = Math.max(0, (raceClock() - Date.parse(row.last_seen)) / 1000);
  return Math.min(finish, row.distance_m + row.speed_mps * since);
}
// Each followed runner's splits (time and position) and projected finish.
function renderFollowedSplits() {
  const blocks = [];
  for (const [p, row] of state.followed) {
    const splits = [...(state.followedSplits.get(p) || new Map()).values()].sort((a, b) => a.split - b.split);
    const div = el("div", { class: "runner", "data-participant": p });
    div.appendChild(el("strong", {}, row?.name || p));
    const list = el("ol", { class: "splits" });
    for (const s of splits) {
      const within = [[row?.gender, s.gender_position], [row?.category, s.category_position]]
        .filter(([g, n]) => g && n != null).map(([g, n]) => `${g} #${n}`);
      list.appendChild(el("li", { "data-split": s.split }, `${splitName(s.split)} ${sinceGun(s.time)} (#${[s.position, ...within].join(" · ")})`));
    }
    div.appendChild(list);
    if (row?.status === "racing" && row.eta) div.appendChild(el("p", { class: "eta" }, `projected finish ${sinceGun(row.eta)}`));
    const now = projectedNow(row);
    if (now != null) div.appendChild(el("p", { class: "now" }, `about ${dist(now)} now`));
    if (!row) div.appendChild(el("p", { class: "muted" }, "not in this race (yet)"));
    blocks.push(div);
  }
  $("followed-splits").replaceChildren(...blocks);
}
// Find a runner by bib (their id) or name, and follow them.
$("find-runner").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = $("find").value.trim();
  if (!q || !state.race) return;
  const lower = q.toLowerCase();
  const byName = [...state.rows.values(), ...state.followed.values()].find((r) => r && r.name && r.name.toLowerCase().includes(lower));
  const found = (id) => {
    if (!state.followed.has(id)) toggleFollow(id);
    $("find-status").textContent = `following ${id}`;
  };
  $("find").value = "";
  if (state.rows.has(q) || state.followed.has(q)) return found(q);
  if (byName) return found(byName.participant);
  // Not in view (a window of a big race): the edge searches bibs and names;
  // a bib it does not know yet is followed by id all the same.
  const race = state.race;
  fetch(`/api/races/${encodeURIComponent(race)}/standings?${new URLSearchParams({ q, from: 1, to: 1 })}`)
    .then((res) => (res.ok ? res.json() : []))
    .then((hits) => { if (race === state.race) found(hits[0]?.participant || q); })
    .catch(() => found(q));
});
function status() {
  const live = state.socket && state.socket.readyState === WebSocket.OPEN;
  const w = state.windowed && state.window;
  const shown = w ? `ranks ${w.from}–${w.to} of ${w.total}` : `${state.rows.size} participants`;
  $("status").textContent = `${live ? "live" : "offline"} · seq ${state.seq} · ${shown}` + (token ? "" : " · read-only");
}
