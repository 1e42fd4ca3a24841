// The live auction page: one EventSource (the API's own SSE, or nchan for big sales), prices applied in stream order.
"use strict";
(function () {
  const root = document.getElementById("live");
  if (!root) return;
  const mode = root.dataset.stream;
  const lots = root.dataset.lots.split(",").filter(Boolean).map(Number);
  const auction = root.dataset.auction;
  const statusText = document.getElementById("live-status");
  const applied = new Map(); // lot id -> [ms, seq] of the newest Redis stream entry shown
  const ends = new Map(); // lot id -> end (Unix ms)
  const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

  function streamId(text) {
    const [ms, seq] = (text || "0-0").split("-").map(Number);
    return [ms || 0, seq || 0];
  }
  function isNewer(id, than) {
    return !than || id[0] > than[0] || (id[0] === than[0] && id[1] > than[1]);
  }
  function row(lot) {
    return document.querySelector('tr[data-lot="' + lot + '"]');
  }
  function setField(tr, name, text) {
    const cell = tr.querySelector('[data-field="' + name + '"]');
    if (cell) cell.textContent = text;
  }
  function millis(value) {
    return typeof value === "number" ? value : Date.parse(value);
  }
  function countdown(lot) {
    const tr = row(lot);
    const end = ends.get(lot);
    if (!tr || end === undefined) return;
    if (tr.dataset.status === "closed") return setField(tr, "ends", "ended");
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    setField(tr, "ends", (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s");
  }
  function show(lot, kind, data) {
    const tr = row(lot);
    if (!tr) return;
    if (data.status) tr.dataset.status = data.status;
    if (kind === "closed" && tr.dataset.status !== "closed") {
      tr.dataset.status = "closed";
      document.dispatchEvent(new CustomEvent("lot-closed", { detail: lot })); // bid.js shows the buyer's outcome
    }
    setField(tr, "status", kind === "closed" ? "closed: " + (data.outcome || "") : tr.dataset.status || "");
    if (data.currentPrice !== undefined) setField(tr, "price", money.format(data.currentPrice));
    if (data.bidCount !== undefined) setField(tr, "bids", String(data.bidCount));
    if (data.leader !== undefined) setField(tr, "leader", data.leader ? "Bidder " + data.leader : "—");
    if (data.reserveMet !== undefined) setField(tr, "reserve", data.reserveMet ? "met" : "not met");
    if (data.endsAt !== undefined) ends.set(lot, millis(data.endsAt));
    countdown(lot);
    tr.classList.add("flash");
    setTimeout(function () { tr.classList.remove("flash"); }, 600);
  }
  // Each event names its Redis stream position: the native feed in its id (`lot:ms-seq`), nchan in `eventId`.
  function onEvent(kind, event) {
    const data = JSON.parse(event.data);
    const lot = Number(data.lotId);
    const position = (data.eventId || event.lastEventId || "").split(":")[1];
    if (position !== undefined) {
      const id = streamId(position);
      if (!isNewer(id, applied.get(lot)) && kind !== "snapshot") return; // a repeat after a reconnect
      applied.set(lot, id);
    }
    show(lot, kind, data);
  }
  function streamUrl() {
    if (mode === "nchan") return root.dataset.streamUrl + "?lots=" + lots.join(",");
    if (auction) return "/api/v1/auctions/" + auction + "/stream";
    return "/api/v1/stream?lots=" + lots.join(",");
  }
  function connect() {
    const source = new EventSource(streamUrl());
    ["snapshot", "price", "extended", "closed"].forEach(function (kind) {
      source.addEventListener(kind, function (event) { onEvent(kind, event); });
    });
    // `resync`: the native feed dropped a slow connection; EventSource reconnects with Last-Event-ID by itself.
    source.addEventListener("resync", function () { statusText.textContent = "catching up…"; });
    let loaded = false;
    source.onopen = function () {
      statusText.textContent = "live";
      statusText.className = "";
      if (!loaded) { loaded = true; loadViews(); }
    };
    source.onerror = function () { statusText.textContent = "reconnecting…"; statusText.className = "offline"; };
  }
  // The lots' state now, read once the stream is open (events from then on arrive on it); a view loses to any
  // event already shown.
  function loadViews() {
    lots.forEach(function (lot) {
      fetch("/api/v1/lots/" + lot).then(function (r) { return r.ok ? r.json() : null; }).then(function (view) {
        if (view && !applied.has(lot)) show(lot, "snapshot", view);
      }).catch(function () {});
    });
  }
  connect();
  setInterval(function () { lots.forEach(countdown); }, 1000);
})();
