// The moderators' page: the queue (GET /api/v1/moderation/queue, oldest first) with approve, reject (the note is
// the author's reason) and redact (publish an edited text). Text only ever goes in through textContent.
"use strict";
(function () {
  const root = document.getElementById("moderation");
  if (!root) return;
  const session = window.hubSession;
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 20;
  const FILTERS = ["flagged", "reason", "status"];
  let page = 1;

  const element = window.hubDom.element;
  function say(text, isError) {
    window.hubDom.status($("queue-status"), text, isError);
  }
  function age(iso) {
    const minutes = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
    if (minutes < 60) return minutes + " min ago";
    if (minutes < 48 * 60) return Math.round(minutes / 60) + " h ago";
    return Math.round(minutes / 1440) + " days ago";
  }
  function scores(item) {
    const parts = [];
    const found = item.scores || {};
    if (typeof found.profanity === "number") parts.push("profanity " + found.profanity.toFixed(2));
    if (found.pii && found.pii.length) parts.push("PII " + found.pii.join(", "));
    if (item.redactions && item.redactions.length) parts.push("removed " + item.redactions.join(", "));
    if (item.attempts) parts.push(item.attempts + " attempts" + (item.last_error ? ": " + item.last_error : ""));
    return parts.join(" · ");
  }

  async function load() {
    const signedIn = session.current();
    $("queue").replaceChildren();
    $("pager").hidden = true;
    if (!signedIn) return say("sign in as a moderator to see the queue");
    const query = new URLSearchParams({ page: String(page), limit: String(PAGE_SIZE) });
    for (const name of FILTERS) if ($(name).value) query.set(name, $(name).value);
    say("loading…");
    const response = await session.send("/api/v1/moderation/queue?" + query, { method: "GET" });
    const body = await response.json().catch(() => null);
    if (!response.ok) return say(session.problem(body, response), true);
    const { total, pages } = body.pagination;
    say(total === 0 ? "nothing waiting" : total + (total === 1 ? " item" : " items"));
    body.data.forEach(function (item) { $("queue").append(render(item)); });
    $("pager").hidden = pages <= 1;
    $("page-of").textContent = "page " + page + " of " + pages;
    $("previous").disabled = page <= 1;
    $("next").disabled = page >= pages;
  }

  function render(item) {
    const entry = element("li");
    entry.dataset.item = item.id;
    const head = element("p", "", "meta");
    const vehicle = element("a", "vehicle " + item.vehicle_id);
    vehicle.href = "/vehicles/" + encodeURIComponent(item.vehicle_id);
    head.append(item.id + " · " + item.status.replace("_", " ") + (item.review_reason ? " · " + item.review_reason.replace("_", " ") : "")
      + " · " + age(item.created_at) + " · ", vehicle);
    const text = element("textarea");
    text.value = item.text;
    text.rows = 3;
    text.cols = 70;
    text.setAttribute("aria-label", "text of " + item.id);
    const note = element("input");
    note.placeholder = "note (a rejection's note is the author's reason)";
    note.size = 50;
    note.setAttribute("aria-label", "note on " + item.id);
    const outcome = element("span", "", "outcome");
    outcome.setAttribute("role", "status");
    const actions = element("p");
    for (const action of ["approve", "reject", "redact"]) {
      const button = element("button", action === "redact" ? "publish edited text" : action);
      button.type = "button";
      button.dataset.action = action;
      button.addEventListener("click", function () {
        decide(item, action, note.value, text.value, entry, outcome).catch(function () {
          outcome.textContent = "the decision did not reach the server: try again";
          outcome.className = "outcome error";
        });
      });
      actions.append(button, " ");
    }
    actions.append(outcome);
    entry.append(head, element("p", scores(item), "meta"), text, element("br"), note, actions);
    if (item.reason) entry.insertBefore(element("p", "Author told: " + item.reason, "meta"), text);
    return entry;
  }

  async function decide(item, action, note, text, entry, outcome) {
    const body = { note: note };
    if (action === "redact") body.text = text;
    const response = await session.send("/api/v1/moderation/items/" + encodeURIComponent(item.id) + "/" + action, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const reply = response ? await response.json().catch(() => null) : null;
    if (!response || !response.ok) {
      outcome.textContent = response ? session.problem(reply, response) : "sign in again";
      outcome.className = "outcome error";
      return;
    }
    entry.dataset.decided = action;
    entry.querySelectorAll("button, textarea, input").forEach(function (control) { control.disabled = true; });
    outcome.textContent = reply.message || action + "d";
    outcome.className = "outcome";
  }

  $("filters").addEventListener("submit", function (event) {
    event.preventDefault();
    page = 1;
    load().catch(function () { say("the queue is unreachable; try again", true); });
  });
  $("previous").addEventListener("click", function () { page = Math.max(1, page - 1); load(); });
  $("next").addEventListener("click", function () { page += 1; load(); });
  session.onChange(function () { page = 1; load(); });
  load().catch(function () { say("the queue is unreachable; try again", true); });
})();
