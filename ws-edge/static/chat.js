// A chat room: its messages, and posting.
"use strict";

// ---- chat -------------------------------------------------------------
function onRoom(f) {
  if (f.seq === undefined) return; // unsubscribed
  if (f.type === "snapshot") {
    // A resume continues the log; anything else (a gap, a fresh start) restarts it.
    const first = f.messages.length ? f.messages[0].seq : f.seq + 1;
    if (first !== state.roomSeq + 1) state.messages = [];
  }
  for (const m of f.messages || []) {
    const last = state.messages.length ? state.messages[state.messages.length - 1].seq : 0;
    if (m.seq > last) state.messages.push(m);
  }
  state.messages = state.messages.slice(-200);
  state.roomSeq = f.seq;
  const box = $("messages"), atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  box.replaceChildren(...state.messages.map((m) => {
    const p = el("p"); p.append(el("span", { class: "seq" }, "#" + m.seq), el("b", {}, m.user), ": " + m.text); return p;
  }));
  if (atEnd) box.scrollTop = box.scrollHeight;
  markRead();
}
// The read marker: what this page has shown of the room, sent at most
// every two seconds (members only; with a token, picking a room joins it).
let readTimer = null;
function markRead() {
  if (!token || readTimer || !state.room || state.roomSeq <= (state.readSent.get(state.room) || 0)) return;
  readTimer = setTimeout(() => {
    readTimer = null;
    const room = state.room, seq = state.roomSeq;
    if (!room || seq <= (state.readSent.get(room) || 0)) return;
    state.readSent.set(room, seq);
    send({ type: "read", room, seq });
  }, 2000);
}
function pickRoom(id) {
  if (state.room) send({ type: "unsubscribe", view: "room", id: state.room });
  state.room = id; state.roomSeq = 0; state.messages = []; $("messages").replaceChildren();
  send({ type: "subscribe", view: "room", id });
  if (token) send({ type: "join", room: id });
}
$("say").onsubmit = (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || !state.room) return;
  send({ type: "post", room: state.room, text, client_msg_id: "c" + Date.now() + Math.random().toString(36).slice(2, 6) });
  $("text").value = "";
};
// A direct conversation, opened by naming the other user: the same room
// whichever of the two opens it (README, "Conversations").
$("dm").onsubmit = async (e) => {
  e.preventDefault();
  const other = $("dm-with").value.trim();
  if (!other || !token) return;
  const r = await fetch("/api/conversations", {
    method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify({ with: other }),
  });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) { $("who").textContent = answer.error || `no conversation (${r.status})`; return; }
  $("dm-with").value = "";
  await loadPickers();
  $("room").value = answer.id;
  pickRoom(answer.id);
};
$("dm").hidden = !token;
$("who").textContent = token ? "posting as " + (claims(token)?.sub || "you") : "read-only: sign up or log in (or open this page with #token=… from `pace token --user NAME`) to post";
$("text").disabled = !token;
