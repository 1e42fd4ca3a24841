"""The buyer's pages in a real browser (headless Debian Chromium driven by Playwright) against the real API:
search from the page's query string, facets and ranges that filter, errors shown; a bid priced live on the page."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from connectors.search.factory import create_search_index
from schemas.vehicle import Question
from search_api.settings import ApiSettings
from tests.bidding.live_server import LiveApi, live_api, live_auction
from tests.bidding.test_feed import bid
from tests.bidding.test_my_bids import persist
from tests.bidding.test_results import close_and_persist
from tests.connectors.search.conftest import make_vehicle
from tests.marketplace.api_client import PASSWORD
from tests.marketplace.cars_helpers import new_vin

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium (apt-get install -y chromium; .ci/run does)",
)
# As root, on a machine with no way out: no sandbox, and none of Chromium's own calls home.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def api(database_factory: Callable[[str], str], directory: Path) -> Iterator[LiveApi]:
    with live_api(database_factory, directory, "browser") as live:
        asyncio.run(fill_index(directory / "index"))
        yield live


async def fill_index(index_path: Path) -> None:
    """25 Camrys (two in California, one with markup in its trim), 3 Ford F-150s, a Civic in a live auction."""
    writer = create_search_index(ApiSettings(index_path=index_path), writer=True)
    vehicles = [
        make_vehicle(n, make="Toyota", model="Camry", year=2010 + n % 12, asking_price=10_000.0 + 500 * n)
        for n in range(1, 26)
    ]
    vehicles[0] = make_vehicle(1, make="Toyota", model="Camry", trim='<img src=x id="injected">', state="CA")
    vehicles[1] = make_vehicle(
        2, make="Toyota", model="Camry", state="CA", asking_price=31_000.0,
        questions=[Question(id=4, text="Any accident history?", answer="None: clean Carfax.")],
    )  # fmt: skip
    vehicles += [make_vehicle(n, make="Ford", model="F-150", asking_price=38_000.0) for n in range(26, 29)]
    vehicles.append(
        make_vehicle(29, make="Honda", model="Civic", currentBid=9_000.0, auction_id=77, auction_status="live",
                     auction_ends_at="2030-01-01T12:00:00Z")
    )  # fmt: skip
    try:
        await writer.upsert(vehicles)
        await writer.flush()
    finally:
        await writer.close()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == []  # no script error on any page


async def result_ids(page: Page) -> list[str]:
    return [str(await item.get_attribute("data-vehicle")) for item in await page.locator("#results li").all()]


async def test_search_page_filters_by_facet_range_and_chip(api: LiveApi, page: Page) -> None:
    await page.goto(f"{api.base_url}/search?q=camry")
    status = page.locator("#search-status")
    await expect(status).to_have_text("25 vehicles")
    await expect(page.locator("#results li")).to_have_count(20)
    assert await page.locator("#q").input_value() == "camry"

    await page.locator('input[data-facet="state"][value="CA"]').check()
    await expect(status).to_have_text("2 vehicles")
    assert re.search(r"[?&]state=CA", page.url)
    assert sorted(await result_ids(page)) == ["1", "2"]
    await expect(page.locator('#results li[data-vehicle="1"] .title')).to_contain_text('<img src=x id="injected">')
    assert await page.locator("#injected").count() == 0  # a trim holding markup shows as text
    chip = page.locator("#active-filters button", has_text="state: CA")
    await chip.click()
    await expect(status).to_have_text("25 vehicles")
    assert "state=" not in page.url

    await page.locator('button[data-range="price"]', has_text="$30,000 –").click()
    await expect(status).to_have_text("1 vehicle")
    assert await result_ids(page) == ["2"]
    assert "price_min=30000" in page.url

    await page.go_back()
    await expect(status).to_have_text("25 vehicles")


async def test_search_page_pages_sorts_and_types_a_search(api: LiveApi, page: Page) -> None:
    await page.goto(f"{api.base_url}/search")
    status = page.locator("#search-status")
    await expect(status).to_have_text("29 vehicles")
    await expect(page.locator("#page-of")).to_have_text("page 1 of 2")
    await expect(page.locator("#previous")).to_be_disabled()
    first_page = await result_ids(page)
    make_boxes = await page.locator('input[data-facet="make"]').count()
    searches: list[str] = []
    page.on("request", lambda request: searches.append(request.url) if "/api/v1/vehicles?" in request.url else None)
    await page.locator("#next").click()
    await expect(page.locator("#page-of")).to_have_text("page 2 of 2")
    second_page = await result_ids(page)
    assert len(second_page) == 9
    assert not set(first_page) & set(second_page)
    # Turning the page keeps the facets on screen and does not ask the server to count them again.
    assert [("facets=false" in url, "page=2" in url) for url in searches] == [(True, True)]
    assert await page.locator('input[data-facet="make"]').count() == make_boxes > 0

    await page.locator("#q").fill("f150")
    await page.locator("#sort").select_option("-price")
    await page.locator("#search-form button[type=submit]").click()
    await expect(status).to_have_text("3 vehicles")
    assert "page=" not in page.url  # a new search starts on its first page
    assert "facets=false" not in searches[-1]  # other words: other counts
    await expect(page.locator('input[data-facet="make"]')).to_have_count(1)
    await expect(page.locator("#results li .title").first).to_contain_text("Ford F-150")

    await page.goto(f"{api.base_url}/search?q=civic")
    live_line = page.locator("#results li .auction")
    await expect(live_line).to_contain_text("Auction live")
    await expect(live_line).to_contain_text("current bid $9,000")
    assert await live_line.locator("a").get_attribute("href") == "/live/auctions/77"


async def test_search_page_shows_what_the_api_refused(api: LiveApi, page: Page) -> None:
    await page.goto(f"{api.base_url}/search?radius_km=50")
    status = page.locator("#search-status")
    await expect(status).to_have_class("error")
    await expect(status).to_contain_text("radius_km")
    await page.goto(f"{api.base_url}/search?make=Lada")
    await expect(status).to_have_text("no vehicle matches; remove a filter")


async def test_the_root_sends_a_browser_to_search(api: LiveApi, page: Page) -> None:
    await page.goto(f"{api.base_url}/")
    assert page.url == f"{api.base_url}/search"
    await expect(page.locator("h1")).to_have_text("Find a vehicle")


async def test_a_bid_reaches_the_live_page_in_the_browser(api: LiveApi, page: Page) -> None:
    async with api.market() as market:
        auction, _ = await live_auction(market, lots=2)
        lot = auction["lots"][1]["id"]
        await page.goto(f"{api.base_url}/live/auctions/{auction['id']}")
        await expect(page.locator("#live-status")).to_have_text(re.compile("live|connected"), timeout=10_000)
        buyer = await market.member()
        placed: dict[str, Any] = await bid(market, buyer, lot, 12_000)
    price = page.locator(f'tr[data-lot="{lot}"] [data-field="price"]')
    await expect(price).to_have_text("$12,000.00", timeout=5_000)
    assert placed["currentPrice"] == 12_000
    await expect(page.locator(f'tr[data-lot="{lot}"] [data-field="bids"]')).to_have_text("1")


async def test_a_buyer_signs_in_and_bids_on_the_live_page(api: LiveApi, page: Page) -> None:
    async with api.market() as market:
        auction, _ = await live_auction(market)
        lot = auction["lots"][0]["id"]
        buyer, rival = await market.member(), await market.member()
        await page.goto(f"{api.base_url}/live/auctions/{auction['id']}")
        row = page.locator(f'tr[data-lot="{lot}"]')
        reply = row.locator('[data-field="reply"]')

        await row.locator("input[name=amount]").fill("12000")
        await row.locator("form.bid button").click()
        await expect(reply).to_have_text("sign in above to bid")

        await page.locator("#sign-in input[name=username]").fill(buyer.email)
        await page.locator("#sign-in input[name=password]").fill("wrong password")
        await page.locator("#sign-in button").click()
        await expect(page.locator("#bidder-status")).to_have_class("error")
        await page.locator("#sign-in input[name=password]").fill(PASSWORD)
        await page.locator("#sign-in button").click()
        await expect(page.locator("#signed-in")).to_be_visible()

        await row.locator("input[name=amount]").fill("50")
        await row.locator("form.bid button").click()
        await expect(reply).to_have_class("error")
        await expect(reply).to_contain_text("(at least $10,000.00)")  # the lot's starting price

        await row.locator("input[name=amount]").fill("12000")
        await row.locator("form.bid button").click()
        await expect(reply).to_contain_text("accepted: you lead at")
        await expect(row.locator('[data-field="bids"]')).to_have_text("1")  # over the price feed

        await bid(market, rival, lot, 13_000)  # a live bid above the buyer's maximum
        await expect(reply).to_have_text("outbid: the price is now $13,000.00")
        await expect(row.locator('[data-field="price"]')).to_have_text("$13,000.00")

        await persist(api)  # the bids process records accepted bids in PostgreSQL
        await page.goto(f"{api.base_url}/my-bids")  # the same tab: still signed in
        await expect(page.locator("#bids-status")).to_have_text("1 lot", timeout=10_000)
        my_row = page.locator(f'#bids tr[data-lot="{lot}"]')
        await expect(my_row).to_contain_text("outbid")
        await expect(my_row).to_contain_text("$13,000.00")
        await bid(market, buyer, lot, 14_000)  # back in front: the page follows the lot's prices
        await expect(my_row).to_contain_text("leading", timeout=10_000)
        await expect(my_row).to_contain_text("$14,000.00")

        await page.go_back()
        await page.reload()  # the session lasts as long as the tab
        await expect(page.locator("#signed-in")).to_be_visible()
        await page.locator("#sign-out").click()
        await expect(page.locator("#sign-in")).to_be_visible()


async def test_a_vehicle_page_shows_details_and_approved_questions(api: LiveApi, page: Page) -> None:
    await page.goto(f"{api.base_url}/search?q=camry&state=CA&sort=-price")
    await page.locator('#results li[data-vehicle="2"] .title').click()
    assert page.url == f"{api.base_url}/vehicles/2"
    await expect(page.locator("#title")).to_have_text("2019 Toyota Camry LE")
    await expect(page.locator("#price")).to_have_text("$31,000")
    await expect(page.locator("#specs")).to_contain_text("42,000 mi")
    await expect(page.locator("#questions li")).to_have_text(["Any accident history?Dealer: None: clean Carfax."])

    await page.goto(f"{api.base_url}/vehicles/424242")
    await expect(page.locator("#title")).to_have_text("Vehicle not found")
    await expect(page.locator("#ask")).to_be_hidden()


async def test_a_buyer_asks_on_the_vehicle_page_and_follows_moderation(
    api: LiveApi, directory: Path, page: Page
) -> None:
    async with api.market() as market:
        dealer = await market.dealer()
        car = market.car(dealer)
        await index_as_the_pipeline_would(directory / "index", car)
        buyer, moderator = await market.member(), await market.member("moderator")
        await page.goto(f"{api.base_url}/vehicles/{car}")
        await expect(page.locator("#no-questions")).to_be_visible()
        await page.locator("#question").fill("Does it come with two keys?")
        await page.locator("#ask button").click()
        await expect(page.locator("#ask-status")).to_have_text("sign in above to ask")

        await page.locator("#sign-in input[name=username]").fill(buyer.email)
        await page.locator("#sign-in input[name=password]").fill(PASSWORD)
        await page.locator("#sign-in button").click()
        await expect(page.locator("#signed-in")).to_be_visible()
        await page.locator("#ask button").click()
        await expect(page.locator("#ask-status")).to_have_text("Your question: waiting for moderation")

        queue = await market.client.get("/api/v1/moderation/queue?flagged=false", headers=moderator.headers)
        asked = [item for item in queue.json()["data"] if item["text"] == "Does it come with two keys?"]
        assert len(asked) == 1, queue.text
        approved = await market.client.post(
            f"/api/v1/moderation/items/{asked[0]['id']}/approve", json={"note": "fine"}, headers=moderator.headers
        )
        assert approved.status_code == 200, approved.text
    await expect(page.locator("#ask-status")).to_have_text(
        "Your question: approved: it shows here in a moment", timeout=10_000
    )

    # The pipeline puts the approved question into the document; the listing's dealer answers it on the page.
    question_id = int(asked[0]["id"].split("-")[1])
    await index_as_the_pipeline_would(
        directory / "index", car, dealer_id=dealer.dealer_id, version=2,
        questions=[Question(id=question_id, text="Does it come with two keys?")],
    )  # fmt: skip
    await page.locator("#sign-out").click()
    await page.reload()
    await expect(page.locator("#questions li")).to_have_count(1)
    await expect(page.locator("#questions .answer-form")).to_have_count(0)  # signed out: no answer form
    await sign_in(page, dealer.member.email)
    answer = page.locator("#questions .answer-form")
    await answer.locator("input").fill("Yes, both keys and the manual.")
    await answer.locator("button").click()
    await expect(answer.locator(".outcome")).to_have_text("sent: it shows here once moderation approves it")


async def index_as_the_pipeline_would(index_path: Path, car_id: int, **fields: Any) -> None:
    writer = create_search_index(ApiSettings(index_path=index_path), writer=True)
    try:
        await writer.upsert([make_vehicle(car_id, year=2021, make="Toyota", model="Camry", **fields)])
        await writer.flush()
    finally:
        await writer.close()


async def sign_in(page: Page, email: str) -> None:
    await page.locator("#sign-in input[name=username]").fill(email)
    await page.locator("#sign-in input[name=password]").fill(PASSWORD)
    await page.locator("#sign-in button").click()
    await expect(page.locator("#signed-in")).to_be_visible()


async def test_a_moderator_works_the_queue_on_the_moderation_page(api: LiveApi, page: Page) -> None:
    async with api.market() as market:
        dealer = await market.dealer()
        car = market.car(dealer)
        buyer, moderator = await market.member(), await market.member("moderator")
        asked = []
        for text in ("Is the <b>title</b> clean?", "Text me at five five five, one two one two"):
            response = await market.client.post(
                f"/api/v1/vehicles/{car}/questions", json={"text": text}, headers=buyer.headers
            )
            assert response.status_code == 201, response.text
            asked.append(response.json()["data"]["id"])
        ids = [int(item_id.split("-")[1]) for item_id in asked]
        market.sql(  # what the moderation worker does with an uncertain verdict
            "UPDATE questions SET status = 'pending_review', flagged = true, review_reason = 'uncertain' "
            "WHERE id = ANY(%s)",
            (ids,),
        )

        await page.goto(f"{api.base_url}/moderation")
        status = page.locator("#queue-status")
        await expect(status).to_have_text("sign in as a moderator to see the queue")
        await sign_in(page, buyer.email)
        await expect(status).to_have_class("error")  # a buyer is refused
        await page.locator("#sign-out").click()
        await sign_in(page, moderator.email)
        await expect(status).to_have_text("2 items")
        first = page.locator(f'#queue li[data-item="{asked[0]}"]')
        await expect(first.locator("textarea")).to_have_value("Is the <b>title</b> clean?")
        await expect(first).to_contain_text("pending review · uncertain")

        await first.locator("input").fill("Please ask about the car itself.")
        await first.locator('button[data-action="reject"]').click()
        await expect(first.locator(".outcome")).to_have_text("rejected")
        second = page.locator(f'#queue li[data-item="{asked[1]}"]')
        await second.locator("textarea").fill("Is this car still available?")
        await second.locator('button[data-action="redact"]').click()
        await expect(second.locator(".outcome")).to_have_text("redacted")

        rejected = await market.client.get(f"/api/v1/questions/{asked[0]}", headers=buyer.headers)
        assert (rejected.json()["data"]["status"], rejected.json()["data"]["reason"]) == (
            "rejected", "Please ask about the car itself.")  # fmt: skip
        redacted = await market.client.get(f"/api/v1/questions/{asked[1]}", headers=buyer.headers)
        assert (redacted.json()["data"]["status"], redacted.json()["data"]["text"]) == (
            "approved", "Is this car still available?")  # fmt: skip
        await page.locator("#filters button").click()
        await expect(status).to_have_text("nothing waiting")


async def test_a_dealer_lists_a_car_auctions_it_and_decides_a_lot_on_the_desk(api: LiveApi, page: Page) -> None:
    async with api.market() as market:
        dealer = await market.dealer()
        await page.goto(f"{api.base_url}/dealer")
        await expect(page.locator("#desk-status")).to_have_text("sign in with your dealer account")
        await sign_in(page, dealer.member.email)
        await expect(page.locator("#store")).to_contain_text("Lot Co · Denver, CO · verified")
        await expect(page.locator('#statistics tr[data-statistic="cars_listed"] td')).to_have_text("0")

        form = page.locator("#new-car")
        vin = new_vin()
        await form.locator("[name=vin]").fill(vin[:-1] + ("0" if vin[-1] != "0" else "1"))  # a wrong last character
        for name, value in (
            ("make", "honda"),
            ("model", "accord"),
            ("year", "2019"),
            ("mileage", "45,000"),
            ("condition_grade", "4.1"),
            ("exterior_color", "blue"),
            ("asking_price", "$18,500"),
        ):
            await form.locator(f"[name={name}]").fill(value)
        for name, choice in (
            ("body_type", "sedan"),
            ("fuel", "gasoline"),
            ("transmission", "cvt"),
            ("drivetrain", "fwd"),
        ):
            await form.locator(f"[name={name}]").select_option(choice)
        await form.locator("button").click()
        await expect(page.locator("#new-car-status")).to_have_class("error")
        await expect(form.locator(".problem")).to_have_count(1)
        await form.locator("[name=vin]").fill(vin)
        await form.locator("button").click()
        await expect(page.locator("#new-car-status")).to_contain_text("listed: 2019 Honda Accord")
        await expect(form.locator(".problem")).to_have_count(0)
        row = page.locator("#inventory tbody tr").first
        await expect(row).to_contain_text(vin)
        await expect(row).to_contain_text("$18,500")  # no ZIP given: the car stands at the store
        await expect(page.locator('#statistics tr[data-statistic="cars_listed"] td')).to_have_text("1")

        await row.locator("input[type=checkbox]").check()
        await row.locator("[name=starting_price]").fill("10000")
        await row.locator("[name=reserve_price]").fill("15000")
        auction = page.locator("#new-auction")
        start = datetime.now() + timedelta(minutes=10)
        await auction.locator("[name=title]").fill("Friday sale")
        await auction.locator("[name=starts_at]").fill(start.strftime("%Y-%m-%dT%H:%M"))
        await auction.locator("[name=ends_at]").fill((start - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
        await auction.locator("button").click()
        await expect(page.locator("#new-auction-status")).to_contain_text("ends_at")  # ends before it starts
        await auction.locator("[name=ends_at]").fill((start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
        await auction.locator("button").click()
        await expect(page.locator("#new-auction-status")).to_contain_text("created: Friday sale")
        await expect(page.locator("#auctions tbody tr")).to_have_count(1)
        await expect(row).to_contain_text("in auction")

        # The auction runs: a bid below the reserve, then the close leaves the lot to its seller.
        auction_id = int(str(await page.locator("#auctions tbody tr").first.get_attribute("data-auction")))
        market.shift_schedule(auction_id, timedelta(minutes=-1), timedelta(hours=1))
        detail = (await market.client.get(f"/api/v1/auctions/{auction_id}", headers=dealer.member.headers)).json()
        lot = detail["data"]["lots"][0]["id"]
        high_bidder = await market.member()
        await bid(market, high_bidder, lot, 12_000)
        await close_and_persist(api)
        await page.reload()
        await page.locator("#auctions tbody tr button").click()
        lot_row = page.locator(f'#lots tr[data-lot="{lot}"]')
        await expect(lot_row).to_contain_text("if bid")
        await lot_row.locator("input").fill("11000")
        await lot_row.locator('button[data-action="counter"]').click()
        await expect(lot_row.locator(".outcome")).to_contain_text("above the high bid")
        await lot_row.locator("input").fill("14000")
        await lot_row.locator('button[data-action="counter"]').click()
        await expect(lot_row.locator(".outcome")).to_have_text("countered: $14,000 offered")

        # The high bidder answers on the live page.
        await page.locator("#sign-out").click()
        await page.goto(f"{api.base_url}/live/auctions/{auction_id}")
        await sign_in(page, high_bidder.email)
        reply = page.locator(f'tr[data-lot="{lot}"] [data-field="reply"]')
        await expect(reply).to_contain_text("the seller offers $14,000.00:")
        await reply.locator('button[data-answer="accept"]').click()
        await expect(reply).to_have_text("you won at $14,000.00")


async def test_a_new_account_registers_its_store_on_the_desk(api: LiveApi, page: Page) -> None:
    async with api.market() as market:
        newcomer = await market.member()  # a buyer account: registering a store makes it a dealer
        await page.goto(f"{api.base_url}/dealer")
        await sign_in(page, newcomer.email)
        store = page.locator("#new-store")
        await expect(store).to_be_visible()
        fields = {"name": "Sunset Motors", "address": "12 Ocean Ave", "zip": "00000",
                  "licence_number": "CA-55120", "contact_email": "sales@sunset.example"}  # fmt: skip
        for name, value in fields.items():
            await store.locator(f"[name={name}]").fill(value)
        await store.locator("button").click()
        await expect(store.locator(".problem")).to_have_count(1)  # the ZIP, named beside its field
        await expect(page.locator("#new-store-status")).to_contain_text("zip")
        await store.locator("[name=zip]").fill("90401")
        await store.locator("button").click()
        await expect(page.locator("#store")).to_have_text("Sunset Motors · Santa Monica, CA · pending")
        await expect(store).to_be_hidden()
        token = await page.evaluate("JSON.parse(sessionStorage.getItem('auction-hub.session')).access")
        cars = await market.client.get("/api/v1/cars", headers={"Authorization": f"Bearer {token}"})
        assert cars.status_code == 200, cars.text  # the page's refreshed token says dealer
        assert newcomer.access_token != token


async def test_a_visitor_creates_an_account_and_is_signed_in(api: LiveApi, page: Page) -> None:
    await page.goto(f"{api.base_url}/my-bids")
    await expect(page.locator("#bids-status")).to_have_text("sign in to see your bids")
    await page.locator("#register-box summary").click()
    form = page.locator("#register")
    await form.locator("[name=full_name]").fill("Nina Buyer")
    await form.locator("[name=email]").fill("nina@example.com")
    await form.locator("[name=password]").fill("onlyletters")
    await form.locator("button").click()
    await expect(page.locator("#bidder-status")).to_have_class("error")
    await expect(page.locator("#bidder-status")).to_contain_text("password")
    await form.locator("[name=password]").fill("correct horse 7")
    await form.locator("button").click()
    await expect(page.locator("#bidder-name")).to_have_text("Nina Buyer")
    await expect(page.locator("#register-box")).to_be_hidden()
    await expect(page.locator("#bids-status")).to_have_text("no bids yet: find a car at /search")


async def test_the_high_bidder_watching_a_lot_close_sees_its_outcome(api: LiveApi, page: Page) -> None:
    async with api.market() as market:
        auction, _ = await live_auction(market)
        lot = auction["lots"][0]["id"]
        buyer = await market.member()
        await page.goto(f"{api.base_url}/live/auctions/{auction['id']}")
        await sign_in(page, buyer.email)
        row = page.locator(f'tr[data-lot="{lot}"]')
        await row.locator("input[name=amount]").fill("12000")
        await row.locator("form.bid button").click()
        await expect(row.locator('[data-field="reply"]')).to_contain_text("accepted: you lead at")
        await close_and_persist(api)  # past its end: closed below the reserve of 15,000
        await expect(row.locator('[data-field="status"]')).to_contain_text("closed")
        await expect(row.locator('[data-field="reply"]')).to_have_text(
            "your bid is below the reserve: the seller decides", timeout=10_000
        )
