// The course map (course, marks, timing lines, a chip-timed race's route
// and mats) with each runner's dot, and the lap chart.
"use strict";

// ---- map --------------------------------------------------------------
let project = null;
// A chip-timed race's route: its points, the distance to each (metres, as
// drawn) and how the drawn length compares with the finish mat's
// distance (VIEWS.md), so that a distance in the race is a point on it.
function routeOf(def) {
  const k = def?.kind;
  if (k?.type !== "mats" || !k.course) return null;
  const rad = Math.PI / 180, cum = [0];
  for (let i = 1; i < k.course.length; i++) {
    const a = k.course[i - 1], b = k.course[i];
    const x = (b.lon - a.lon) * rad * Math.cos((a.lat + b.lat) / 2 * rad), y = (b.lat - a.lat) * rad;
    cum.push(cum[i - 1] + 6371008.8 * Math.hypot(x, y));
  }
  return { pts: k.course, cum, scale: cum[cum.length - 1] / k.mats[k.mats.length - 1].distance_m };
}
function alongRoute(route, m) {
  const { pts, cum } = route, d = Math.max(0, Math.min(cum[cum.length - 1], m * route.scale));
  let lo = 1, hi = cum.length - 1;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (cum[mid] < d) lo = mid + 1; else hi = mid; }
  const a = pts[lo - 1], b = pts[lo], seg = cum[lo] - cum[lo - 1], f = seg > 0 ? (d - cum[lo - 1]) / seg : 0;
  return { lat: a.lat + (b.lat - a.lat) * f, lon: a.lon + (b.lon - a.lon) * f };
}
// Where a runner is on the map: their GPS fix; or, in a chip-timed race
// with a route, where their distance (projected between mats while they
// race) puts them on it.
function whereOnMap(r) {
  if (r.position) return { at: r.position, projected: false };
  if (!state.route || r.distance_m == null || !["racing", "finished", "retired"].includes(r.status)) return null;
  return { at: alongRoute(state.route, projectedNow(r) ?? r.distance_m), projected: true };
}
function geometry(def) {
  const k = def.kind, pts = [], shapes = [];
  if (k.type === "course") { pts.push(...k.polyline); shapes.push(["course", k.polyline]); }
  if (k.type === "mats" && k.course) {
    pts.push(...k.course); shapes.push(["course", k.course]);
    for (const m of k.mats) shapes.push(["mat", [alongRoute(state.route, m.distance_m)], m.name || m.id]);
  }
  if (k.type === "marks") {
    pts.push(...k.start, ...k.finish); shapes.push(["line", k.start], ["line", k.finish]);
    for (const m of k.marks) { pts.push(...m.points); shapes.push(m.points.length === 2 ? ["line", m.points] : ["mark", m.points]); }
  }
  if (k.type === "timing_lines") for (const l of k.lines) if (l.ends) { pts.push(...l.ends); shapes.push(["line", l.ends]); }
  return { pts, shapes };
}
function drawMap() {
  const svg = $("map"); svg.replaceChildren();
  project = null;
  state.route = routeOf(state.definition);
  if (!state.definition) return;
  const { pts, shapes } = geometry(state.definition);
  if (pts.length === 0) { svg.appendChild(el("svg:text", { x: 10, y: 20 }, state.definition.kind.type === "mats" ? "no geometry (a chip-timed race)" : "no geometry (a timing-line race)")); return; }
  const lat0 = pts.reduce((s, p) => s + p.lat, 0) / pts.length, kx = Math.cos(lat0 * Math.PI / 180);
  const xs = pts.map((p) => p.lon * kx), ys = pts.map((p) => -p.lat);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const s = Math.min(380 / Math.max(x1 - x0, 1e-9), 280 / Math.max(y1 - y0, 1e-9));
  project = (p) => [10 + (p.lon * kx - x0) * s, 10 + (-p.lat - y0) * s];
  for (const [kind, ps, title] of shapes) {
    const xy = ps.map(project);
    if (kind === "mark") svg.appendChild(el("svg:circle", { class: "mark", cx: xy[0][0], cy: xy[0][1], r: 4 }));
    else if (kind === "mat") {
      const c = el("svg:circle", { class: "mat", cx: xy[0][0], cy: xy[0][1], r: 3.5 });
      c.appendChild(el("svg:title", {}, title)); svg.appendChild(c);
    }
    else svg.appendChild(el("svg:path", { class: kind, d: "M" + xy.map((q) => q.join(",")).join("L") }));
  }
  svg.appendChild(el("svg:g", { id: "dots" }));
}
function drawDots(sorted) {
  const g = $("dots"); if (!g || !project) return;
  g.replaceChildren(...sorted.map((r) => [r, whereOnMap(r)]).filter(([, w]) => w).map(([r, w]) => {
    const [x, y] = project(w.at);
    const c = el("svg:circle", {
      class: (r.rank === 1 ? "dot lead" : "dot") + (w.projected ? " projected" : ""),
      cx: x.toFixed(1), cy: y.toFixed(1), r: r.rank <= 3 ? 4 : 2.5, "data-participant": r.participant,
    });
    c.appendChild(el("svg:title", {}, `${r.rank}. ${r.name}`));
    return c;
  }));
}

// ---- lap chart --------------------------------------------------------
const COLORS = ["#d62f4f", "#2f6fd6", "#2f9e5f", "#e07a2f", "#8a4fd6", "#1d9aa8", "#b5a31f", "#6b7280"];
function drawChart(sorted) {
  const svg = $("chart"), lead = sorted.slice(0, 8);
  let maxSplit = 0, maxPos = 1;
  for (const r of lead) for (const [k, p] of state.splits.get(r.participant) || []) { maxSplit = Math.max(maxSplit, k); maxPos = Math.max(maxPos, p); }
  const parts = [el("svg:line", { class: "axis", x1: 30, y1: 10, x2: 30, y2: 145 }), el("svg:line", { class: "axis", x1: 30, y1: 145, x2: 395, y2: 145 })];
  if (maxSplit === 0) { parts.push(el("svg:text", { x: 40, y: 80 }, "no splits yet")); svg.replaceChildren(...parts); return; }
  const X = (k) => 30 + (maxSplit === 1 ? 180 : (k - 1) * 360 / (maxSplit - 1)), Y = (p) => 12 + (p - 1) * 130 / Math.max(maxPos - 1, 1);
  parts.push(el("svg:text", { x: 2, y: 14 }, "P1"), el("svg:text", { x: 2, y: 145 }, "P" + maxPos), el("svg:text", { x: 360, y: 157 }, "split " + maxSplit));
  lead.forEach((r, i) => {
    const pts = [...(state.splits.get(r.participant) || [])].sort((a, b) => a[0] - b[0]);
    if (pts.length === 0) return;
    const d = "M" + pts.map(([k, p]) => `${X(k).toFixed(1)},${Y(p).toFixed(1)}`).join("L");
    const path = el("svg:path", { d, stroke: COLORS[i % COLORS.length] });
    path.appendChild(el("svg:title", {}, r.name));
    parts.push(path);
  });
  svg.replaceChildren(...parts);
}
