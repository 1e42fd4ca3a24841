// The signed-in buyer, shared by the pages: tokens kept for this tab only (sessionStorage), one refresh when the
// access token has expired, and the sign-in block (#sign-in, #signed-in, #bidder-name, #sign-out, #bidder-status).
"use strict";
window.hubSession = (function () {
  const KEY = "auction-hub.session";
  const listeners = [];
  const $ = (id) => document.getElementById(id);

  function current() {
    try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (error) { return null; }
  }
  function store(value) {
    if (value) sessionStorage.setItem(KEY, JSON.stringify(value)); else sessionStorage.removeItem(KEY);
    show();
    listeners.forEach(function (listener) { listener(value); });
  }
  function say(text, isError) {
    const status = $("bidder-status");
    if (status) window.hubDom.status(status, text, isError);
  }
  function problem(body, response) {
    return body && body.error ? body.error.message : "HTTP " + response.status;
  }
  function show() {
    const signedIn = current();
    if (!$("sign-in")) return;
    $("sign-in").hidden = Boolean(signedIn);
    $("register-box").hidden = Boolean(signedIn);
    $("signed-in").hidden = !signedIn;
    $("bidder-name").textContent = signedIn ? signedIn.name : "";
  }

  async function signIn(form) {
    return signInWith(new URLSearchParams(new FormData(form)), form);
  }
  async function register(form) {
    say("creating the account…");
    const fields = Object.fromEntries(new FormData(form));
    const response = await fetch("/api/v1/auth/register", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(fields),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) return say(problem(body, response), true);
    form.reset();
    $("register-box").open = false;
    return signInWith(new URLSearchParams({ username: fields.email, password: fields.password }), null);
  }
  async function signInWith(credentials, form) {
    say("signing in…");
    const response = await fetch("/api/v1/auth/login", { method: "POST", body: credentials });
    const body = await response.json().catch(() => null);
    if (!response.ok) return say(problem(body, response), true);
    const me = await fetch("/api/v1/users/me", { headers: { Authorization: "Bearer " + body.access_token } });
    const profile = me.ok ? (await me.json()).data : null;
    const name = profile ? profile.full_name || profile.email : credentials.get("username");
    if (form) form.reset();
    say("");
    store({ access: body.access_token, refresh: body.refresh_token, name: name });
  }
  async function refreshed(signedIn) {
    const response = await fetch("/api/v1/auth/refresh", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: signedIn.refresh }),
    });
    if (!response.ok) return null;
    const body = await response.json();
    const next = Object.assign({}, signedIn, { access: body.access_token, refresh: body.refresh_token || signedIn.refresh });
    store(next);
    return next;
  }
  // A request as the signed-in buyer; null when nobody is signed in. A 401 gets one refresh and one retry (the same
  // headers: an Idempotency-Key makes the retry the same bid); a second 401 signs the buyer out.
  async function send(url, init) {
    let signedIn = current();
    if (!signedIn) return null;
    for (let attempt = 0; ; attempt++) {
      const headers = Object.assign({}, init.headers, { Authorization: "Bearer " + signedIn.access });
      const response = await fetch(url, Object.assign({}, init, { headers: headers }));
      if (response.status !== 401) return response;
      signedIn = attempt ? null : await refreshed(signedIn);
      if (!signedIn) { store(null); return response; }
    }
  }
  function signOut() {
    const signedIn = current();
    if (signedIn) {
      fetch("/api/v1/auth/logout", {
        method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + signedIn.access },
        body: JSON.stringify({ refresh_token: signedIn.refresh }),
      }).catch(function () {});
    }
    store(null);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!$("sign-in")) return;
    $("sign-in").addEventListener("submit", function (event) {
      event.preventDefault();
      signIn(event.target).catch(function () { say("sign-in failed: the server is unreachable", true); });
    });
    $("sign-out").addEventListener("click", signOut);
    $("register").addEventListener("submit", function (event) {
      event.preventDefault();
      register(event.target).catch(function () { say("the account was not created: the server is unreachable", true); });
    });
    show();
  });
  return {
    current: current, send: send, problem: problem, say: say,
    refresh: function () { const signedIn = current(); return signedIn ? refreshed(signedIn) : Promise.resolve(null); },
    onChange: function (listener) { listeners.push(listener); },
  };
})();
