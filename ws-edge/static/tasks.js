// Calculation tasks: submit one, and its result.
"use strict";

// ---- tasks ------------------------------------------------------------
function onTask(f) {
  const r = f.result; if (!r) return;
  state.tasks.set(f.id, r); drawTasks();
}
function drawTasks() {
  $("results").replaceChildren(...[...state.tasks.values()].slice(-8).reverse().map((t) =>
    el("li", { "data-status": t.status }, `${t.expression} = ${t.status === "SUCCESSFUL" ? t.result : t.status === "FAILED" ? "failed: " + t.error : "…"}`)));
}
$("calc").onsubmit = async (e) => {
  e.preventDefault();
  const expression = $("expr").value.trim(); if (!expression) return;
  const r = await fetch("/api/tasks", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ expression }) });
  const body = await r.json();
  if (!r.ok) { state.tasks.set("err" + Date.now(), { expression, status: "FAILED", error: body.error }); drawTasks(); return; }
  state.tasks.set(body.id, { id: body.id, expression, status: "PENDING" }); drawTasks();
  send({ type: "subscribe", view: "task", id: body.id });
};
