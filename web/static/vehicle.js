// A vehicle's page: its search document (GET /api/v1/vehicles/{id}), approved Q&A, and a question form that follows
// the question through moderation. Text only ever goes in through textContent.
"use strict";
(function () {
  const root = document.getElementById("vehicle");
  if (!root) return;
  const session = window.hubSession;
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
  const count = new Intl.NumberFormat("en-US");
  const $ = (name) => document.getElementById(name);
  let shown = null; // the vehicle document on the page
  let isListingDealer = false;
  const STATUS = { pending: "waiting for moderation", pending_review: "waiting for a moderator",
    approved: "approved: it shows here in a moment", rejected: "not published" };

  const element = window.hubDom.element;
  function spec(label, value) {
    if (value === null || value === undefined || value === "") return;
    const row = element("tr");
    row.append(element("th", label), element("td", String(value)));
    $("specs").tBodies[0].append(row);
  }

  async function load() {
    // Revalidated (ETag, a 304 when unchanged), so a question approved a moment ago shows on reload.
    const response = await fetch("/api/v1/vehicles/" + encodeURIComponent(id), { cache: "no-cache" });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      $("title").textContent = response.status === 404 ? "Vehicle not found" : "Vehicle unavailable";
      window.hubDom.status($("vehicle-status"), session.problem(body, response), true);
      $("ask").hidden = true;
      return;
    }
    render(body);
  }

  function render(vehicle) {
    const title = [vehicle.year, vehicle.make, vehicle.model, vehicle.trim].filter(Boolean).join(" ");
    document.title = title + " · auction-hub";
    $("title").textContent = title;
    $("price").textContent = money.format(vehicle.asking_price);
    if (vehicle.status !== "active" && vehicle.status !== "in_auction") {
      $("vehicle-status").textContent = "This vehicle is " + vehicle.status.replace("_", " ") + ".";
    }
    $("auction").replaceChildren();
    if (vehicle.auction_id && vehicle.auction_status) {
      const bid = vehicle.currentBid == null ? "" : ", current bid " + money.format(vehicle.currentBid);
      const link = element("a", vehicle.auction_status === "closed" ? "results" : "bid / watch live");
      link.href = "/live/auctions/" + encodeURIComponent(vehicle.auction_id);
      $("auction").append("· auction " + vehicle.auction_status + bid + " · ", link);
    }
    $("specs").tBodies[0].replaceChildren();
    spec("VIN", vehicle.vin);
    spec("Mileage", count.format(vehicle.mileage) + " mi");
    spec("Condition", vehicle.condition_grade + " of 5");
    spec("Body", vehicle.body_type);
    spec("Fuel", vehicle.fuel);
    spec("Transmission", vehicle.transmission);
    spec("Drivetrain", vehicle.drivetrain);
    spec("Colour", vehicle.exterior_color);
    spec("Location", vehicle.city + ", " + vehicle.state + " " + vehicle.zip);
    if (vehicle.dealer) {
      spec("Dealer", vehicle.dealer.name + (vehicle.dealer.rating ? " (rated " + vehicle.dealer.rating + ")" : ""));
    }
    $("description").textContent = vehicle.description || "";
    shown = vehicle;
    renderQuestions();
  }

  function renderQuestions() {
    const list = $("questions");
    list.replaceChildren();
    for (const question of (shown && shown.questions) || []) {
      const item = element("li");
      item.dataset.question = question.id;
      item.append(element("p", question.text, "question"));
      if (question.answer) item.append(element("p", "Dealer: " + question.answer, "answer"));
      else if (isListingDealer) item.append(answerForm(question));
      list.append(item);
    }
    $("no-questions").hidden = list.children.length > 0;
  }
  // The listing's own dealer answers unanswered questions here; the answer is moderated like the question.
  function answerForm(question) {
    const form = element("form", undefined, "answer-form");
    const text = element("input");
    text.name = "text";
    text.required = true;
    text.maxLength = 2000;
    text.size = 60;
    text.placeholder = "your answer as the dealer";
    text.setAttribute("aria-label", "answer to question " + question.id);
    const outcome = element("span", "", "outcome");
    outcome.setAttribute("role", "status");
    const button = element("button", "Answer");
    button.type = "submit";
    form.append(text, " ", button, " ", outcome);
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const response = await session.send("/api/v1/questions/" + question.id + "/answers", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text: text.value }),
      });
      const body = response ? await response.json().catch(() => null) : null;
      outcome.className = "outcome" + (response && response.ok ? "" : " error");
      outcome.textContent = !response ? "sign in again"
        : response.ok ? "sent: it shows here once moderation approves it" : session.problem(body, response);
      if (response && response.ok) { text.disabled = true; button.disabled = true; }
    });
    return form;
  }
  // Whether the signed-in user runs the store that lists this vehicle (then unanswered questions get a form).
  async function checkListingDealer() {
    isListingDealer = false;
    if (session.current() && shown && shown.dealer_id != null) {
      const response = await session.send("/api/v1/dealers/me", { method: "GET" });
      if (response && response.ok) isListingDealer = (await response.json()).data.id === shown.dealer_id;
    }
    renderQuestions();
  }

  function askStatus(text, isError) {
    window.hubDom.status($("ask-status"), text, isError);
  }
  // Follows the question through moderation for a minute: the author learns at once if it was not published.
  async function follow(itemId) {
    for (let attempt = 0; attempt < 30; attempt++) {
      await new Promise((done) => setTimeout(done, 2000));
      const response = await session.send("/api/v1/questions/" + encodeURIComponent(itemId), { method: "GET" });
      if (!response || !response.ok) return;
      const item = (await response.json()).data;
      askStatus("Your question: " + (STATUS[item.status] || item.status) + (item.reason ? " (" + item.reason + ")" : ""),
        item.status === "rejected");
      if (item.status === "approved") { await load(); return; }
      if (item.status === "rejected") return;
    }
  }
  async function ask(form) {
    askStatus("sending…");
    const response = await session.send("/api/v1/vehicles/" + encodeURIComponent(id) + "/questions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: form.text.value }),
    });
    if (response === null) return askStatus("sign in above to ask", true);
    const body = await response.json().catch(() => null);
    if (!response.ok) return askStatus(session.problem(body, response), true);
    form.reset();
    askStatus("Your question: " + (STATUS[body.data.status] || body.data.status));
    follow(body.data.id).catch(function () {});
  }

  $("ask").addEventListener("submit", function (event) {
    event.preventDefault();
    ask(event.target).catch(function () { askStatus("the question did not reach the server: try again", true); });
  });
  session.onChange(function () { checkListingDealer().catch(function () {}); });
  load().then(function () { return checkListingDealer().catch(function () {}); }).catch(function () {
    window.hubDom.status($("vehicle-status"), "search is unreachable; reload in a moment", true);
  });
})();
