// Bidding from the live page (session.js signs the buyer in): maximum bids per lot, and a notice when outbid.
// Prices themselves arrive on the page's price feed (live.js); this script shows each bid's own reply.
"use strict";
(function () {
  const root = document.getElementById("live");
  if (!root) return;
  const session = window.hubSession;
  const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  let notices = null;

  function reply(lot, text, isError) {
    const span = document.querySelector('form.bid[data-lot="' + lot + '"] + [data-field="reply"]');
    if (!span) return;
    span.textContent = text;
    span.className = isError ? "error" : "";
  }
  function newKey() {
    return self.crypto && crypto.randomUUID ? crypto.randomUUID() : Date.now() + "-" + Math.random().toString(16).slice(2);
  }
  // Outbid notices for the signed-in buyer; EventSource cannot send headers, so the token rides along.
  function listen(signedIn) {
    if (notices) { notices.close(); notices = null; }
    if (!signedIn) return;
    notices = new EventSource("/api/v1/me/bids/stream?access_token=" + encodeURIComponent(signedIn.access));
    notices.addEventListener("outbid", function (event) {
      const data = JSON.parse(event.data);
      reply(data.lotId, "outbid: the price is now " + money.format(data.currentPrice), true);
    });
    notices.onerror = function () {
      if (notices && notices.readyState === EventSource.CLOSED) session.say("outbid alerts stopped: sign in again", true);
    };
  }

  async function placeBid(form) {
    const lot = Number(form.dataset.lot);
    const amount = form.amount.value;
    reply(lot, "sending…");
    const response = await session.send("/api/v1/lots/" + lot + "/bids", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": newKey() }, // one bid, however many requests
      body: JSON.stringify({ amount: amount, currency: "USD", kind: "max" }),
    });
    if (response === null) return reply(lot, "sign in above to bid", true);
    const body = await response.json().catch(() => null);
    if (response.status === 401) return reply(lot, "your session ended: sign in again", true);
    if (response.status === 429) {
      const wait = response.headers.get("Retry-After") || "a few";
      return reply(lot, session.problem(body, response) + " (wait " + wait + " s)", true);
    }
    if (!response.ok) return reply(lot, session.problem(body, response), true);
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

  document.querySelectorAll("form.bid").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      placeBid(form).catch(function () { reply(Number(form.dataset.lot), "the bid did not reach the server: try again", true); });
    });
    form.amount.addEventListener("focus", function () { hint(form).catch(function () {}); }, { once: true });
  });
  session.onChange(listen);
  listen(session.current());
})();
