"""The live auction page: served by the API, native SSE by default, nchan when the setting says so."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from bidding.settings import NchanSettings
from tests.bidding.live_server import LiveApi, live_api, live_auction
from tests.marketplace.test_auctions import Market
from web.pages import render_page


@pytest.fixture(scope="module")
def api(database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(database_factory, tmp_path_factory.mktemp("web-pages"), "webpages") as live:
        yield live


@pytest.fixture
async def market(api: LiveApi) -> AsyncIterator[Market]:
    async with api.market() as market:
        yield market


def test_the_setting_switches_the_page_to_nchan() -> None:
    native = render_page("Auction 3", [(11, 101), (12, 102)], NchanSettings(), 3)
    assert 'data-stream="native"' in native
    assert 'data-lots="11,12"' in native
    assert '<a href="/vehicles/101">101</a>' in native  # each lot's vehicle page
    assert 'data-auction="3"' in native
    nchan = render_page("Lot 11", [(11, None)], NchanSettings(live_stream="nchan", nchan_stream_url="/fan/out"), None)
    assert 'data-stream="nchan"' in nchan
    assert 'data-stream-url="/fan/out"' in nchan
    assert 'data-auction=""' in nchan
    assert "{" not in nchan.split("<body>")[1]  # every placeholder filled


def test_titles_are_escaped() -> None:
    page = render_page("<script>x</script>", [(1, None)], NchanSettings(), None)
    assert "<script>x</script>" not in page
    assert "&lt;script&gt;" in page


async def test_the_live_pages_and_their_assets(market: Market) -> None:
    auction, _ = await live_auction(market, lots=2)
    lots = [lot["id"] for lot in auction["lots"]]
    client: httpx.AsyncClient = market.client

    page = await client.get(f"/live/auctions/{auction['id']}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # the strict policy: no inline script
    assert 'data-stream="native"' in page.text  # the default
    assert f'data-lots="{lots[0]},{lots[1]}"' in page.text
    assert '<script src="/live/static/live.js"' in page.text

    lot_page = await client.get(f"/live/lots/{lots[1]}")
    assert lot_page.status_code == 200
    assert f'data-lots="{lots[1]}"' in lot_page.text

    script = await client.get("/live/static/live.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "new EventSource" in script.text
    assert (await client.get("/live/static/live.css")).status_code == 200

    assert (await client.get("/live/static/..%2Fpages.py")).status_code == 404
    missing = await client.get("/live/auctions/999999")
    assert missing.status_code == 404
    assert missing.json()["status"] == "error"
    assert (await client.get("/live/lots/999999")).status_code == 404
