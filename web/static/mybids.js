// A buyer's lots (GET /api/v1/me/bids): where they lead, where they were outbid, what they won; refreshed as the
// lots' prices move (one watchlist EventSource). Text only ever goes in through textContent.
"use strict";
(function () {
  const root = document.getElementById("my-bids");
  if (!root) return;
  const session = window.hubSession;
  const $ = (id) => document.getElementById(id);
  const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  const RESULTS = { sold: ["won", "lost"], unsold: ["not sold", "not sold"],
    pending_seller: ["below reserve: the seller decides", "lost"], countered: ["the seller made you an offer", "lost"] };
  let feed = null;
  let watched = "";
  let pending = null;

  const element = window.hubDom.element;
  function say(text, isError) {
    window.hubDom.status($("bids-status"), text, isError);
  }
  function standing(item) {
    if (item.result) return (RESULTS[item.result] || [item.result, item.result])[item.youLead ? 0 : 1];
    if (item.status === "closed") return item.youLead ? "closing: you lead" : "outbid";
    return item.youLead ? "leading" : "outbid";
  }
  function link(text, href) {
    const cell = element("td");
    const anchor = element("a", text);
    anchor.href = href;
    cell.append(anchor);
    return cell;
  }

  async function load() {
    $("bids").hidden = true;
    if (!session.current()) { watch([]); return say("sign in to see your bids"); }
    const response = await session.send("/api/v1/me/bids?limit=50", { method: "GET" });
    const body = response ? await response.json().catch(() => null) : null;
    if (!response || !response.ok) return say(response ? session.problem(body, response) : "sign in again", true);
    const items = body.data;
    say(items.length ? body.pagination.total + (body.pagination.total === 1 ? " lot" : " lots") : "no bids yet: find a car at /search");
    const rows = items.map(function (item) {
      const row = element("tr");
      row.dataset.lot = item.lotId;
      row.dataset.standing = item.youLead ? "leading" : "behind";
      row.append(link("#" + item.lotId, "/live/lots/" + item.lotId), link(String(item.vehicleId), "/vehicles/" + item.vehicleId),
        element("td", money.format(item.yourHighestBid)),
        element("td", money.format(item.finalPrice == null ? item.currentPrice : item.finalPrice)),
        element("td", String(item.bidCount)), element("td", item.status),
        element("td", standing(item), item.youLead ? "" : "error"),
        element("td", new Date(item.endsAt).toLocaleString()));
      return row;
    });
    $("bids").tBodies[0].replaceChildren(...rows);
    $("bids").hidden = rows.length === 0;
    watch(items.filter((item) => item.status !== "closed").map((item) => item.lotId));
  }
  // Any price or close on these lots reloads the list (at most every half second).
  function watch(lots) {
    const key = lots.join(",");
    if (key === watched) return;
    watched = key;
    if (feed) { feed.close(); feed = null; }
    if (!lots.length) return;
    feed = new EventSource("/api/v1/stream?lots=" + key);
    ["price", "extended", "closed"].forEach(function (kind) {
      feed.addEventListener(kind, function () {
        if (pending) return;
        pending = setTimeout(function () { pending = null; load().catch(function () {}); }, 500);
      });
    });
  }

  session.onChange(function () { load().catch(function () { say("your bids are unreachable; reload", true); }); });
  load().catch(function () { say("your bids are unreachable; reload", true); });
})();
