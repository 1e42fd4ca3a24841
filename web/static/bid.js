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
    window.hubDom.status(span, text, isError);
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
    ["counter_offer", "result"].forEach(function (kind) {
      notices.addEventListener(kind, function (event) { outcome(Number(JSON.parse(event.data).lotId)).catch(function () {}); });
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

  // A closed lot's outcome for its high bidder: won, waiting for the seller, or the seller's counter-offer to answer.
  // `retries`: a lot that just closed has its result recorded a moment after its close event.
  async function outcome(lot, retries) {
    const response = await session.send("/api/v1/lots/" + lot + "/result", { method: "GET" });
    if (response && response.status === 404 && retries) {
      setTimeout(function () { outcome(lot, retries - 1).catch(function () {}); }, 1000);
      return;
    }
    if (!response || !response.ok) return; // not closed yet, or nobody signed in
    const result = (await response.json()).data;
    if (!result.youAreHighBidder) return;
    const texts = {
      sold: "you won at " + money.format(result.finalPrice),
      unsold: "the seller declined your bid",
      pending_seller: "your bid is below the reserve: the seller decides",
      countered: "the seller offers " + money.format(result.counterAmount) + ":",
    };
    reply(lot, texts[result.status] || result.status, result.status === "unsold");
    const span = document.querySelector('form.bid[data-lot="' + lot + '"] + [data-field="reply"]');
    if (result.status !== "countered" || !span) return;
    for (const action of ["accept", "decline"]) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = action;
      button.dataset.answer = action;
      button.addEventListener("click", function () {
        answer(lot, action).catch(function () { reply(lot, "the answer did not reach the server: try again", true); });
      });
      span.append(" ", button);
    }
  }
  async function answer(lot, action) {
    const response = await session.send("/api/v1/lots/" + lot + "/counter-offer", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ action: action }),
    });
    const body = response ? await response.json().catch(() => null) : null;
    if (!response || !response.ok) return reply(lot, response ? session.problem(body, response) : "sign in again", true);
    await outcome(lot);
  }
  function outcomes() {
    root.dataset.lots.split(",").filter(Boolean).forEach(function (lot) { outcome(Number(lot)).catch(function () {}); });
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
  session.onChange(function (signedIn) { listen(signedIn); if (signedIn) outcomes(); });
  document.addEventListener("lot-closed", function (event) { outcome(event.detail, 5).catch(function () {}); });
  listen(session.current());
  outcomes();
})();
