// The buyer's search page: the page's own query string is the search (shareable, back/forward work), sent as is to
// GET /api/v1/vehicles; facets toggle filters, range buckets set bounds. Text only ever goes in through textContent.
"use strict";
(function () {
  const PAGE_SIZE = 20;
  const LISTED_FACETS = ["make", "model", "body_type", "fuel", "transmission", "drivetrain", "color", "state",
    "auction_status"];
  const RANGES = { price: ["price_min", "price_max", 0.01], year: ["year_min", "year_max", 1],
    mileage: ["mileage_min", "mileage_max", 1] };
  const LABELS = { body_type: "body", auction_status: "auction", price_min: "price from", price_max: "price to",
    year_min: "year from", year_max: "year to", mileage_min: "miles from", mileage_max: "miles to",
    radius_km: "within km", q: "words" };
  const FORM_FIELDS = ["q", "zip", "radius_km", "sort"];
  const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
  const count = new Intl.NumberFormat("en-US");
  const $ = (id) => document.getElementById(id);
  const status = $("search-status");
  let latest = 0; // answers to older requests are dropped: the newest search wins
  // The facets on screen and the search they count. Turning a page or changing the order leaves the counts as they
  // are, so those requests skip them (`facets=false`): the facets are most of a search's cost on the server.
  let shown = { key: null, facets: {} };

  function facetKey(current) {
    const key = new URLSearchParams(current);
    key.delete("page");
    key.delete("sort");
    key.sort();
    return key.toString();
  }

  function params() {
    return new URLSearchParams(location.search);
  }
  const element = window.hubDom.element;
  // The page's search without one value of a repeatable filter (`make=Ford&make=Toyota` less Ford).
  function withoutValue(name, value) {
    const next = params();
    const kept = next.getAll(name).filter((v) => v !== value);
    next.delete(name);
    for (const v of kept) next.append(name, v);
    return next;
  }
  function navigate(next) {
    next.delete("page");
    go(next);
  }
  function go(next) {
    history.pushState(null, "", "/search" + (next.toString() ? "?" + next : ""));
    load();
  }
  function say(text, isError) {
    window.hubDom.status(status, text, isError);
  }

  async function load() {
    const current = params();
    for (const name of FORM_FIELDS) $(name).value = current.get(name) || "";
    const request = new URLSearchParams(current);
    request.set("limit", String(PAGE_SIZE));
    const key = facetKey(current);
    const sameFacets = key === shown.key;
    if (sameFacets) request.set("facets", "false");
    const ticket = ++latest;
    say("searching…");
    let response, body;
    try {
      response = await fetch("/api/v1/vehicles?" + request, { headers: { Accept: "application/json" } });
      body = await response.json();
    } catch (error) {
      if (ticket === latest) say("search is unreachable; try again in a moment", true);
      return;
    }
    if (ticket !== latest) return;
    if (!response.ok) {
      const message = body && body.error ? body.error.message : "HTTP " + response.status;
      const retry = response.headers.get("Retry-After");
      say(message + (retry ? " (retry in " + retry + " s)" : ""), true);
      return;
    }
    const { total, page, pages } = body.pagination;
    say(total === 0 ? "no vehicle matches; remove a filter"
      : count.format(total) + (total === 1 ? " vehicle" : " vehicles"));
    renderChips(current);
    if (!sameFacets) shown = { key, facets: body.facets || {} };
    renderFacets(current, shown.facets);
    renderResults(body.data);
    $("page-of").textContent = total ? "page " + page + " of " + count.format(pages) : "";
    $("previous").disabled = page <= 1;
    $("next").disabled = page >= pages;
  }

  function renderChips(current) {
    const list = $("active-filters");
    list.replaceChildren();
    for (const [name, value] of current) {
      if (name === "page" || name === "sort") continue;
      const button = element("button", (LABELS[name] || name.replace("_", " ")) + ": " + value + " ×");
      button.type = "button";
      button.title = "remove this filter";
      button.addEventListener("click", () => {
        navigate(withoutValue(name, value));
      });
      const item = element("li");
      item.append(button);
      list.append(item);
    }
  }

  function renderFacets(current, facets) {
    const aside = $("facets");
    aside.replaceChildren();
    for (const name of LISTED_FACETS) {
      const buckets = (facets[name] || []).slice(0, 12);
      const chosen = current.getAll(name);
      if (!buckets.length && !chosen.length) continue;
      aside.append(element("h2", LABELS[name] || name.replace("_", " ")));
      const shown = new Set(buckets.map((b) => String(b.value)));
      const entries = buckets.concat(chosen.filter((v) => !shown.has(v)).map((v) => ({ value: v, count: 0 })));
      for (const bucket of entries) {
        const value = String(bucket.value);
        const box = element("input");
        box.type = "checkbox";
        box.checked = chosen.includes(value);
        box.dataset.facet = name;
        box.value = value;
        box.addEventListener("change", () => {
          const next = withoutValue(name, value);
          if (box.checked) next.append(name, value);
          navigate(next);
        });
        const label = element("label");
        label.append(box, " " + value.replace(/_/g, " ") + " ", element("span", "(" + count.format(bucket.count) + ")", "count"));
        aside.append(label);
      }
    }
    for (const [name, [low, high, step]] of Object.entries(RANGES)) {
      const buckets = (facets[name] || []).filter((b) => b.count > 0);
      if (!buckets.length) continue;
      aside.append(element("h2", name));
      for (const bucket of buckets) {
        const show = (v) => (name === "price" ? money.format(v) : count.format(v));
        const text = bucket.from == null ? "under " + show(bucket.to)
          : bucket.to == null ? show(bucket.from) + " and up" : show(bucket.from) + " – " + show(bucket.to);
        const button = element("button", text + " ", "range");
        button.type = "button";
        button.dataset.range = name;
        button.append(element("span", "(" + count.format(bucket.count) + ")", "count"));
        button.addEventListener("click", () => {
          const next = params();
          next.delete(low);
          next.delete(high);
          if (bucket.from != null) next.set(low, String(bucket.from));
          if (bucket.to != null) next.set(high, String(+(bucket.to - step).toFixed(2))); // buckets end before `to`
          navigate(next);
        });
        aside.append(button);
      }
    }
  }

  function auctionLine(vehicle) {
    if (!vehicle.auction_id || !vehicle.auction_status) return null;
    const line = element("div", "", "auction");
    const bid = vehicle.currentBid == null ? "" : ", current bid " + money.format(vehicle.currentBid);
    const when = vehicle.auction_status === "upcoming" && vehicle.auction_starts_at
      ? " from " + new Date(vehicle.auction_starts_at).toLocaleString()
      : vehicle.auction_status === "live" && vehicle.auction_ends_at
        ? " until " + new Date(vehicle.auction_ends_at).toLocaleString() : "";
    line.append("Auction " + vehicle.auction_status + when + bid + " · ");
    const link = element("a", vehicle.auction_status === "closed" ? "results" : "watch live");
    link.href = "/live/auctions/" + encodeURIComponent(vehicle.auction_id);
    line.append(link);
    return line;
  }

  function renderResults(vehicles) {
    const list = $("results");
    list.replaceChildren();
    for (const vehicle of vehicles) {
      const item = element("li");
      item.dataset.vehicle = vehicle.id;
      const title = element("a", [vehicle.year, vehicle.make, vehicle.model, vehicle.trim].filter(Boolean).join(" "),
        "title");
      title.href = "/vehicles/" + encodeURIComponent(vehicle.id);
      item.append(element("span", money.format(vehicle.asking_price), "price"), title);
      const dealer = vehicle.dealer && vehicle.dealer.name ? " · " + vehicle.dealer.name : "";
      item.append(element("div", count.format(vehicle.mileage) + " mi · condition " + vehicle.condition_grade + " · "
        + vehicle.exterior_color + " · " + vehicle.city + ", " + vehicle.state + dealer, "meta"));
      const auction = auctionLine(vehicle);
      if (auction) item.append(auction);
      list.append(item);
    }
  }

  let suggesting = 0;
  $("q").addEventListener("input", () => {
    const text = $("q").value.trim();
    const ticket = ++suggesting;
    if (text.length < 2) return;
    setTimeout(async () => {
      if (ticket !== suggesting) return;
      try {
        const response = await fetch("/api/v1/vehicles/suggest?q=" + encodeURIComponent(text));
        if (!response.ok || ticket !== suggesting) return;
        const options = (await response.json()).data.map((s) => Object.assign(element("option"), { value: s.text }));
        $("suggestions").replaceChildren(...options);
      } catch (error) { /* suggestions are a nicety: the search itself reports errors */ }
    }, 150);
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const next = params();
    for (const name of FORM_FIELDS) {
      const value = $(name).value.trim();
      if (value) next.set(name, value); else next.delete(name);
    }
    navigate(next);
  });
  $("previous").addEventListener("click", () => {
    const next = params();
    next.set("page", String(Math.max(1, Number(next.get("page") || 1) - 1)));
    go(next);
  });
  $("next").addEventListener("click", () => {
    const next = params();
    next.set("page", String(Number(next.get("page") || 1) + 1));
    go(next);
  });
  window.addEventListener("popstate", load);
  load();
})();
