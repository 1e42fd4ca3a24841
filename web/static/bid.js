// Bidding from the live page: sign in (tokens kept for this tab only), place maximum bids, hear when outbid.
// Prices themselves arrive on the page's price feed (live.js); this script shows each bid's own reply.
"use strict";
(function () {
  const root = document.getElementById("live");
  if (!root) return;
  const KEY = "auction-hub.session";
  const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  const $ = (id) => document.getElementById(id);
  let notices = null;

  function session() {
    try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (error) { return null; }
  }
  function say(text, isError) {
    $("bidder-status").textContent = text;
    $("bidder-status").className = isError ? "error" : "";
  }
  function reply(lot, text, isError) {
    const span = document.querySelector('form.bid[data-lot="' + lot + '"] + [data-field="reply"]');
    if (!span) return;
    span.textContent = text;
    span.className = isError ? "error" : "";
  }
  function problem(body, response) {
    return body && body.error ? body.error.message : "HTTP " + response.status;
  }
  function newKey() {
    return self.crypto && crypto.randomUUID ? crypto.randomUUID() : Date.now() + "-" + Math.random().toString(16).slice(2);
  }

  function showSession() {
    const current = session();
    $("sign-in").hidden = Boolean(current);
    $("signed-in").hidden = !current;
    $("bidder-name").textContent = current ? current.name : "";
    if (notices) { notices.close(); notices = null; }
    if (current) listen(current);
  }
  // Outbid (and if-bid) notices for the signed-in buyer; EventSource cannot send headers, so the token rides along.
  function listen(current) {
    notices = new EventSource("/api/v1/me/bids/stream?access_token=" + encodeURIComponent(current.access));
    notices.addEventListener("outbid", function (event) {
      const data = JSON.parse(event.data);
      reply(data.lotId, "outbid: the price is now " + money.format(data.currentPrice), true);
    });
    notices.onerror = function () {
      if (notices && notices.readyState === EventSource.CLOSED) say("outbid alerts stopped: sign in again", true);
    };
  }

  async function signIn(form) {
    say("signing in…");
    const response = await fetch("/api/v1/auth/login", { method: "POST", body: new URLSearchParams(new FormData(form)) });
    const body = await response.json().catch(() => null);
    if (!response.ok) return say(problem(body, response), true);
    const me = await fetch("/api/v1/users/me", { headers: { Authorization: "Bearer " + body.access_token } });
    const profile = me.ok ? (await me.json()).data : null;
    const name = profile ? profile.full_name || profile.email : form.username.value;
    sessionStorage.setItem(KEY, JSON.stringify({ access: body.access_token, refresh: body.refresh_token, name: name }));
    form.reset();
    say("");
    showSession();
  }
  // An access token lives minutes; the refresh token gets the next one once, then the buyer signs in again.
  async function refreshed(current) {
    const response = await fetch("/api/v1/auth/refresh", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: current.refresh }),
    });
    if (!response.ok) return null;
    const body = await response.json();
    const next = Object.assign({}, current, { access: body.access_token, refresh: body.refresh_token || current.refresh });
    sessionStorage.setItem(KEY, JSON.stringify(next));
    showSession();
    return next;
  }

  async function placeBid(form) {
    const lot = Number(form.dataset.lot);
    let current = session();
    if (!current) return reply(lot, "sign in above to bid", true);
    const amount = form.amount.value;
    const request = { amount: amount, currency: "USD", kind: "max" };
    const key = newKey(); // the same key on the retry below: one bid, however many requests
    reply(lot, "sending…");
    let response;
    for (let attempt = 0; attempt < 2; attempt++) {
      response = await fetch("/api/v1/lots/" + lot + "/bids", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + current.access, "Idempotency-Key": key },
        body: JSON.stringify(request),
      });
      if (response.status !== 401 || attempt) break;
      current = await refreshed(current);
      if (!current) break;
    }
    const body = await response.json().catch(() => null);
    if (response.status === 401) {
      sessionStorage.removeItem(KEY);
      showSession();
      return reply(lot, "your session ended: sign in again", true);
    }
    if (response.status === 429) {
      return reply(lot, problem(body, response) + " (wait " + (response.headers.get("Retry-After") || "a few") + " s)", true);
    }
    if (!response.ok) return reply(lot, problem(body, response), true);
    if (body.status === "REJECTED") {
      const least = body.reason === "too_low" ? " (at least " + money.format(body.minNextBid) + ")" : "";
      return reply(lot, (body.message || body.reason) + least, true);
    }
    form.amount.value = "";
    form.amount.placeholder = "min " + money.format(body.minNextBid);
    reply(lot, body.isLeader
      ? "accepted: you lead at " + money.format(body.currentPrice) + " (your max " + money.format(amount) + ")"
      : "accepted, but another maximum is higher: the price is now " + money.format(body.currentPrice), !body.isLeader);
  }

  async function hint(form) {
    const response = await fetch("/api/v1/lots/" + form.dataset.lot);
    if (response.ok) form.amount.placeholder = "min " + money.format((await response.json()).minNextBid);
  }

  $("sign-in").addEventListener("submit", function (event) {
    event.preventDefault();
    signIn(event.target).catch(function () { say("sign-in failed: the server is unreachable", true); });
  });
  $("sign-out").addEventListener("click", function () {
    const current = session();
    sessionStorage.removeItem(KEY);
    if (current) {
      fetch("/api/v1/auth/logout", {
        method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + current.access },
        body: JSON.stringify({ refresh_token: current.refresh }),
      }).catch(function () {});
    }
    showSession();
  });
  document.querySelectorAll("form.bid").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      placeBid(form).catch(function () { reply(Number(form.dataset.lot), "the bid did not reach the server: try again", true); });
    });
    form.amount.addEventListener("focus", function () { hint(form).catch(function () {}); }, { once: true });
  });
  showSession();
})();
