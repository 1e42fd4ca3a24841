// The dealer's desk: the store's statistics, listing a car, the inventory, creating an auction from it, and the
// auctions' lots with the seller's decision on a lot that closed below its reserve. Text goes in through textContent.
"use strict";
(function () {
  const root = document.getElementById("dealer");
  if (!root) return;
  const session = window.hubSession;
  const $ = (id) => document.getElementById(id);
  const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
  const count = new Intl.NumberFormat("en-US");
  const STATISTICS = [["cars_listed", "cars listed"], ["cars_sold", "cars sold"], ["total_auctions", "auctions"],
    ["live_auctions", "live now"], ["lots_awaiting_decision", "lots waiting for your decision"],
    ["total_bids", "bids"], ["earnings", "earnings", money], ["average_sale_price", "average sale", money],
    ["sale_to_asking_ratio", "sale / asking"]];
  let store = null;

  const element = window.hubDom.element;
  function status(id, text, isError) {
    window.hubDom.status($(id), text, isError);
  }
  async function api(url, init) {
    const response = await session.send(url, init || { method: "GET" });
    if (response === null) throw new Error("sign in first");
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error(session.problem(body, response));
      error.problems = body && body.error ? body.error.problems || [] : [];
      throw error;
    }
    return body;
  }
  function post(url, payload) {
    return api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
  }
  function when(iso) {
    return new Date(iso).toLocaleString();
  }

  async function load() {
    $("desk").hidden = true;
    $("new-store").hidden = true;
    if (!session.current()) return status("desk-status", "sign in with your dealer account");
    status("desk-status", "loading…");
    const response = await session.send("/api/v1/dealers/me", { method: "GET" });
    if (response && response.status === 404) {  // an account without a store registers one here
      status("desk-status", "");
      $("new-store").hidden = false;
      return;
    }
    const body = response ? await response.json().catch(() => null) : null;
    if (!response || !response.ok) return status("desk-status", response ? session.problem(body, response) : "sign in again", true);
    store = body.data;
    status("desk-status", "");
    $("store").textContent = store.name + " · " + store.city + ", " + store.state + " · " + store.status;
    $("desk").hidden = false;
    await Promise.all([statistics(), inventory(), auctions()]);
  }

  async function statistics() {
    const numbers = (await api("/api/v1/dealers/" + store.id + "/statistics")).data;
    const body = $("statistics").tBodies[0];
    body.replaceChildren();
    for (const [name, label, format] of STATISTICS) {
      const value = numbers[name];
      if (value === null || value === undefined) continue;
      const row = element("tr");
      row.dataset.statistic = name;
      row.append(element("th", label), element("td", format ? format.format(value) : String(value)));
      body.append(row);
    }
  }

  async function inventory() {
    const cars = (await api("/api/v1/cars?limit=100")).data;
    const body = $("inventory").tBodies[0];
    body.replaceChildren();
    for (const car of cars) {
      const row = element("tr");
      row.dataset.car = car.id;
      const pick = element("input");
      pick.type = "checkbox";
      pick.disabled = car.status !== "active";
      pick.setAttribute("aria-label", "put car " + car.id + " in the new auction");
      const link = element("a", [car.year, car.make, car.model, car.trim].filter(Boolean).join(" "));
      link.href = "/vehicles/" + car.id;
      const cell = (child) => { const td = element("td"); td.append(child); return td; };
      const price = (name) => {
        const input = element("input");
        input.name = name;
        input.inputMode = "decimal";
        input.size = 9;
        input.disabled = true;
        input.setAttribute("aria-label", name.replace("_", " ") + " of car " + car.id);
        return input;
      };
      const starting = price("starting_price");
      const reserve = price("reserve_price");
      pick.addEventListener("change", function () {
        starting.disabled = reserve.disabled = !pick.checked;
        starting.required = pick.checked;
      });
      row.append(cell(pick), cell(link), element("td", car.vin), element("td", money.format(car.asking_price)),
        element("td", car.status.replace("_", " ")), cell(starting), cell(reserve));
      body.append(row);
    }
  }

  async function auctions() {
    const list = (await api("/api/v1/dealers/" + store.id + "/auctions?limit=50")).data;
    const body = $("auctions").tBodies[0];
    body.replaceChildren();
    for (const auction of list) {
      const row = element("tr");
      row.dataset.auction = auction.id;
      const open = element("button", "lots");
      open.type = "button";
      open.addEventListener("click", function () { lots(auction.id).catch((error) => status("desk-status", error.message, true)); });
      const live = element("a", auction.title);
      live.href = "/live/auctions/" + auction.id;
      const title = element("td");
      title.append(live);
      const action = element("td");
      action.append(open);
      row.append(title, element("td", auction.status), element("td", when(auction.starts_at)),
        element("td", when(auction.ends_at)), element("td", String(auction.lot_count)),
        element("td", String(auction.total_bids)), action);
      body.append(row);
    }
  }

  async function lots(auctionId) {
    const auction = (await api("/api/v1/auctions/" + auctionId)).data;
    const box = $("lots");
    box.replaceChildren(element("h3", auction.title + ": lots"));
    const table = element("table");
    const head = element("tr");
    ["Lot", "Car", "Status", "High bid", "Bids", "Reserve", "Decision"].forEach((text) => head.append(element("th", text)));
    table.append(head);
    for (const lot of auction.lots) {
      const row = element("tr");
      row.dataset.lot = lot.id;
      const decision = element("td");
      if (lot.status === "if_bid") decision.append(...decisionControls(lot, auctionId));
      row.append(element("td", "#" + lot.lot_number), element("td", "car " + lot.vehicle_id),
        element("td", lot.status.replace("_", " ")),
        element("td", lot.current_bid == null ? "—" : money.format(lot.current_bid)),
        element("td", String(lot.bid_count)),
        element("td", lot.reserve_price == null ? "none" : money.format(lot.reserve_price)), decision);
      table.append(row);
    }
    box.append(table);
  }

  // A lot that closed below its reserve: accept the high bid, counter with a price above it, or decline.
  function decisionControls(lot, auctionId) {
    const amount = element("input");
    amount.inputMode = "decimal";
    amount.size = 9;
    amount.placeholder = "counter $";
    amount.setAttribute("aria-label", "counter-offer for lot " + lot.id);
    const outcome = element("span", "", "outcome");
    outcome.setAttribute("role", "status");
    const buttons = ["accept", "counter", "decline"].map(function (action) {
      const button = element("button", action);
      button.type = "button";
      button.dataset.action = action;
      button.addEventListener("click", async function () {
        const payload = action === "counter" ? { action: action, amount: amount.value } : { action: action };
        try {
          const result = (await post("/api/v1/lots/" + lot.id + "/decision", payload)).data;
          outcome.textContent = result.status.replace("_", " ")
            + (result.finalPrice != null ? " at " + money.format(result.finalPrice) : "")
            + (result.counterAmount != null && result.status === "countered" ? ": " + money.format(result.counterAmount) + " offered" : "");
          outcome.className = "outcome";
          buttons.forEach((b) => { b.disabled = true; });
          statistics().catch(() => {});
        } catch (error) {
          outcome.textContent = error.message;
          outcome.className = "outcome error";
        }
      });
      return button;
    });
    return [...buttons, " ", amount, " ", outcome];
  }

  function formPayload(form) {
    const payload = {};
    for (const [name, value] of new FormData(form)) {
      if (String(value).trim() !== "") payload[name] = String(value).trim();
    }
    return payload;
  }
  function markProblems(form, problems) {
    form.querySelectorAll(".problem").forEach((node) => node.remove());
    for (const problem of problems) {
      const field = form.elements[problem.parameter.split(".")[0]];
      if (field && field.parentNode) field.parentNode.append(element("span", problem.message, "problem error"));
    }
  }
  // Registering makes the account a dealer: the next access token says so, so the session refreshes before the desk.
  $("new-store").addEventListener("submit", async function (event) {
    event.preventDefault();
    const form = event.target;
    status("new-store-status", "registering…");
    try {
      await post("/api/v1/dealers", formPayload(form));
      markProblems(form, []);
      form.reset();
      status("new-store-status", "");
      await session.refresh();
    } catch (error) {
      markProblems(form, error.problems || []);
      status("new-store-status", error.message, true);
    }
  });

  $("new-car").addEventListener("submit", async function (event) {
    event.preventDefault();
    const form = event.target;
    status("new-car-status", "listing…");
    try {
      const car = (await post("/api/v1/cars", formPayload(form))).data;
      markProblems(form, []);
      form.reset();
      status("new-car-status", "listed: " + car.year + " " + car.make + " " + car.model + " (car " + car.id + ")");
      await Promise.all([inventory(), statistics()]);
    } catch (error) {
      markProblems(form, error.problems || []);
      status("new-car-status", error.message, true);
    }
  });

  $("new-auction").addEventListener("submit", async function (event) {
    event.preventDefault();
    const form = event.target;
    const lots = [];
    $("inventory").querySelectorAll("tbody tr").forEach(function (row) {
      if (!row.querySelector("input[type=checkbox]").checked) return;
      const lot = { vehicle_id: Number(row.dataset.car), starting_price: row.querySelector("[name=starting_price]").value };
      const reserve = row.querySelector("[name=reserve_price]").value.trim();
      if (reserve) lot.reserve_price = reserve;
      lots.push(lot);
    });
    if (!lots.length) return status("new-auction-status", "tick at least one active car in the inventory", true);
    const at = (name) => (form.elements[name].value ? new Date(form.elements[name].value).toISOString() : "");
    status("new-auction-status", "creating…");
    try {
      const auction = (await post("/api/v1/auctions", {
        title: form.elements.title.value, starts_at: at("starts_at"), ends_at: at("ends_at"), lots: lots,
      })).data;
      form.reset();
      status("new-auction-status", "created: " + auction.title + " (auction " + auction.id + ", " + auction.lot_count + " lots)");
      await Promise.all([inventory(), auctions(), statistics()]);
    } catch (error) {
      status("new-auction-status", error.message, true);
    }
  });

  session.onChange(function () { load().catch((error) => status("desk-status", error.message, true)); });
  load().catch((error) => status("desk-status", error.message, true));
})();
