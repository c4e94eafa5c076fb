// Accounts: sign up, log in and out, and the access token kept fresh with
// the refresh token (README, "Accounts"). Loaded after core.js: a login or
// a logout reloads the page, which then acts as the new user.
"use strict";

const REFRESH_KEY = "pace-refresh";
// A token's claims (its subject and expiry), or null.
function claims(t) {
  try { return JSON.parse(atob(t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))); } catch (e) { return null; }
}
async function accountPost(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  let answer = null;
  try { answer = await r.json(); } catch (e) { /* 204 */ }
  return { status: r.status, answer };
}
function keepTokens(tokens) {
  localStorage.setItem("pace-token", tokens.access_token);
  localStorage.setItem(REFRESH_KEY, tokens.refresh_token);
  token = tokens.access_token;
  scheduleRefresh();
}
// Reloads as nobody (or, with tokens kept, as their user), saying `why`.
function reloadAs(why) {
  sessionStorage.setItem("pace-account-msg", why || "");
  history.replaceState(null, "", location.pathname + location.search);
  location.reload();
}
function forgetTokens(why) {
  localStorage.removeItem("pace-token");
  localStorage.removeItem(REFRESH_KEY);
  reloadAs(why);
}
let refreshTimer = null;
// A minute before the access token expires, the refresh token gets a new
// pair (and is spent: each is used once).
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const c = claims(token);
  if (!c || !localStorage.getItem(REFRESH_KEY)) return;
  refreshTimer = setTimeout(refreshTokens, Math.max(0, c.exp * 1000 - Date.now() - 60_000));
}
async function refreshTokens() {
  const refresh = localStorage.getItem(REFRESH_KEY);
  if (!refresh) return;
  let r;
  try { r = await accountPost("/api/token/refresh", { refresh_token: refresh }); } catch (e) { r = { status: 0 }; }
  if (r.status === 200) keepTokens(r.answer);
  else if (r.status === 401) forgetTokens("your session has ended; log in again");
  else refreshTimer = setTimeout(refreshTokens, 10_000);
}
async function signIn(signUp) {
  const user = $("acct-user").value.trim(), password = $("acct-pass").value;
  const say = (m) => { $("acct-msg").textContent = m; };
  if (!user || !password) return say("a user name and a password, please");
  if (signUp) {
    const r = await accountPost("/api/users", { user, password });
    if (r.status !== 201) return say(r.answer?.error || `sign up failed (${r.status})`);
  }
  const r = await accountPost("/api/login", { user, password });
  if (r.status !== 200) return say(r.answer?.error || `log in failed (${r.status})`);
  keepTokens(r.answer);
  reloadAs("");
}
$("account").addEventListener("submit", (e) => { e.preventDefault(); signIn(false); });
$("signup").onclick = () => signIn(true);
$("logout").onclick = async () => {
  const refresh = localStorage.getItem(REFRESH_KEY);
  if (refresh) await accountPost("/api/logout", { refresh_token: refresh }).catch(() => {});
  forgetTokens("logged out");
};
(() => {
  const me = claims(token)?.sub;
  $("account").hidden = !!me;
  $("me").hidden = !me;
  $("me-name").textContent = me || "";
  $("logout").hidden = !localStorage.getItem(REFRESH_KEY);
  $("acct-msg").textContent = sessionStorage.getItem("pace-account-msg") || "";
  sessionStorage.removeItem("pace-account-msg");
  scheduleRefresh();
})();
