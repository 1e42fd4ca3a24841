"""The users' pages over the API: search, vehicle, the live auction (a lot or an auction's lots, prices pushed over
EventSource: the API's SSE, or nchan), my bids, the dealer desk and the moderation queue.

`AUCTION_HUB_LIVE_STREAM=nchan` points the live page's EventSource at nchan (`AUCTION_HUB_NCHAN_STREAM_URL`,
relative: the page is then opened through nginx, which proxies the API); the default is the API's own SSE feed. The
pages have no inline script or style, so the API's strict Content-Security-Policy stays as it is.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse

from bidding.api import RowId, ServiceDep
from bidding.settings import NchanSettings
from hub.errors import NotFound
from hub.settings import load_settings
from marketplace.catalog import BODY_TYPES, DRIVETRAINS, FUELS, TRANSMISSIONS

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {
    "live.js": "text/javascript; charset=utf-8",
    "live.css": "text/css; charset=utf-8",
    "bid.js": "text/javascript; charset=utf-8",
    "session.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "vehicle.js": "text/javascript; charset=utf-8",
    "moderation.js": "text/javascript; charset=utf-8",
    "dealer.js": "text/javascript; charset=utf-8",
    "mybids.js": "text/javascript; charset=utf-8",
    "search.js": "text/javascript; charset=utf-8",
    "search.css": "text/css; charset=utf-8",
}
PAGE_HEADERS = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["pages"], include_in_schema=False)


def get_live_settings(request: Request) -> NchanSettings:
    settings: NchanSettings | None = getattr(request.app.state, "live_settings", None)
    if settings is None:
        settings = request.app.state.live_settings = load_settings(NchanSettings)
    return settings


LiveSettingsDep = Annotated[NchanSettings, Depends(get_live_settings)]


@cache
def page_with_sign_in(name: str, sign_in_label: str) -> str:
    """A page of `static/` with the pages' one sign-in block (`sign_in.html`, driven by `session.js`) in place."""
    sign_in = (STATIC / "sign_in.html").read_text().replace("{sign_in_label}", html.escape(sign_in_label))
    return (STATIC / name).read_text().replace("{sign_in}", sign_in)


def _template() -> str:
    return page_with_sign_in("live.html", "Sign in to bid")


def render_page(
    title: str, lots: Sequence[tuple[int, int | None]], settings: NchanSettings, auction_id: int | None
) -> str:
    """The page's HTML: one table row per (lot id, vehicle id); the stream choice goes in data attributes."""
    rows = "\n".join(
        f'<tr data-lot="{lot}"><td>#{lot}</td><td>{"" if vehicle is None else _vehicle_link(vehicle)}</td>'
        '<td data-field="status"></td><td data-field="price"></td><td data-field="bids"></td>'
        '<td data-field="leader"></td><td data-field="reserve"></td><td data-field="ends"></td>'
        f'<td><form class="bid" data-lot="{lot}"><input name="amount" type="number" min="1" step="1" required '
        f'aria-label="your maximum bid on lot {lot}, in dollars"><button type="submit">Bid</button></form>'
        '<span data-field="reply" role="status"></span></td></tr>'
        for lot, vehicle in lots
    )
    values = {
        "title": html.escape(title),
        "stream": settings.live_stream,
        "stream_url": html.escape(settings.nchan_stream_url, quote=True),
        "auction": "" if auction_id is None else str(auction_id),
        "lots": ",".join(str(lot) for lot, _ in lots),
        "rows": rows,
    }
    page = _template()
    for name, value in values.items():
        page = page.replace("{" + name + "}", value)
    return page


def _vehicle_link(vehicle_id: int) -> str:
    return f'<a href="/vehicles/{vehicle_id}">{vehicle_id}</a>'


@router.get("/live/auctions/{auctionId}", response_class=HTMLResponse)
async def live_auction(auctionId: RowId, service: ServiceDep, settings: LiveSettingsDep) -> HTMLResponse:  # noqa: N803
    """Every lot of an auction, live."""
    rows = await service.lots_of_auction(auctionId)
    lots = [(int(row["id"]), int(row["vehicle_id"])) for row in rows]
    page = render_page(f"Auction {auctionId}", lots, settings, auctionId)
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/live/lots/{lotId}", response_class=HTMLResponse)
async def live_lot(lotId: RowId, service: ServiceDep, settings: LiveSettingsDep) -> HTMLResponse:  # noqa: N803
    """One lot, live."""
    await service.view(lotId)  # 404 for a lot that does not exist
    return HTMLResponse(render_page(f"Lot {lotId}", [(lotId, None)], settings, None), headers=PAGE_HEADERS)


@router.get("/search", response_class=FileResponse)
async def search_page() -> FileResponse:
    """Vehicle search: the page reads its own query string (`/search?q=camry&make=Toyota`) and asks the API."""
    return FileResponse(STATIC / "search.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/vehicles/{vehicle_id}", response_class=HTMLResponse)
async def vehicle_page(vehicle_id: Annotated[str, PathParam(min_length=1, max_length=64)]) -> HTMLResponse:
    """One vehicle: its details and approved Q&A from the search API, a question form for signed-in buyers."""
    return HTMLResponse(page_with_sign_in("vehicle.html", "Sign in to ask"), headers=PAGE_HEADERS)


@router.get("/my-bids", response_class=HTMLResponse)
async def my_bids_page() -> HTMLResponse:
    """A buyer's lots: leading, outbid, won; refreshed as their prices move (buyers sign in on it)."""
    return HTMLResponse(page_with_sign_in("mybids.html", "Sign in"), headers=PAGE_HEADERS)


@router.get("/moderation", response_class=HTMLResponse)
async def moderation_page() -> HTMLResponse:
    """The moderators' queue: approve, reject or redact flagged questions and answers (moderators sign in on it)."""
    return HTMLResponse(page_with_sign_in("moderation.html", "Sign in"), headers=PAGE_HEADERS)


@cache
def render_dealer_page() -> str:
    """The dealer's desk, its pick lists from the catalog the API validates against."""
    page = page_with_sign_in("dealer.html", "Sign in")
    for name, choices in (
        ("body_types", BODY_TYPES), ("fuels", FUELS), ("transmissions", TRANSMISSIONS), ("drivetrains", DRIVETRAINS)
    ):  # fmt: skip
        options = '<option value="">choose…</option>' + "".join(
            f'<option value="{html.escape(choice)}">{html.escape(choice.replace("_", " "))}</option>'
            for choice in sorted(choices)
        )
        page = page.replace("{" + name + "}", options)
    return page


@router.get("/dealer", response_class=HTMLResponse)
async def dealer_page() -> HTMLResponse:
    """The dealer's desk: statistics, listing cars, the inventory, auctions and if-bid decisions (dealers sign in)."""
    return HTMLResponse(render_dealer_page(), headers=PAGE_HEADERS)


@router.get("/static/{name}")
@router.get("/live/static/{name}")
async def page_asset(name: str) -> FileResponse:
    """The pages' scripts and style sheets."""
    if name not in ASSETS:
        raise NotFound(f"no asset {name}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=300"})
