"""The `auction-hub api` process: one FastAPI app serving every HTTP service of the hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.telemetry import TelemetryConfig

from bidding import api as bidding_routes
from bidding import lifecycle_api as bidding_lifecycle_routes
from bidding.bid_lane import BidLane
from bidding.settings import NchanSettings
from connectors.search.factory import open_search_index
from connectors.search.port import SearchIndex, SearchIndexUnavailable
from hub.errors import install_error_handlers
from hub.security import BodySizeLimit, SecurityHeaders
from hub.settings import load_settings
from marketplace.accounts import Accounts
from marketplace.api import auctions as auction_routes
from marketplace.api import auth as auth_routes
from marketplace.api import cars as car_routes
from marketplace.api import dealers as dealer_routes
from marketplace.api import users as user_routes
from marketplace.db import create_pool
from moderation import api as moderation_routes
from search_api.routes import router as search_router
from search_api.service import VehicleSearchService
from search_api.settings import ApiSettings
from web import pages as web_pages


def create_app(
    settings: ApiSettings,
    index: SearchIndex | None = None,
    bidding: bidding_routes.BiddingHttpSettings | None = None,
    live: NchanSettings | None = None,
) -> FastAPI:
    """`index` lets tests hand in an open index; by default the lifespan opens a reader. `bidding`: same for bidding."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        search_index = index or await open_search_index(settings, writer=False)
        app.state.search_index = search_index
        app.state.search_service = VehicleSearchService(
            search_index, reader_refresh_ms=settings.reader_refresh_ms, retry_after_s=settings.retry_after_s
        )
        # The write API needs PostgreSQL and a token key; search keeps working without either.
        pool = None
        if settings.jwt_secret is not None:
            pool = create_pool(settings.database_url, max_size=settings.db_pool_size)
            await pool.open(wait=False)
            app.state.pool = pool
            app.state.marketplace_settings = settings
            app.state.accounts = Accounts(pool, settings, settings.jwt_secret.get_secret_value())
            # Bidding needs the marketplace database too (lots are armed from it) and Redis.
            await bidding_routes.start_bidding(app, pool, bidding or load_settings(bidding_routes.BiddingHttpSettings))
        try:
            yield
        finally:
            await bidding_routes.stop_bidding(app)
            if pool is not None:
                await pool.close()
            if index is None:
                await search_index.close()

    telemetry: TelemetryConfig | None = None
    if not settings.open_telemetry:
        telemetry = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = FastAPI(title="auction-hub", version="0.1.0", lifespan=lifespan, telemetry=telemetry)
    install_error_handlers(app)
    # Bids first: routes are matched in order, and a bid is the hottest write (routing was ~8% of its CPU last).
    app.include_router(bidding_routes.router)
    app.include_router(search_router)
    app.include_router(auth_routes.router)
    app.include_router(user_routes.router)
    app.include_router(dealer_routes.router)
    app.include_router(car_routes.router)
    app.include_router(auction_routes.router)
    app.include_router(moderation_routes.router)
    app.include_router(moderation_routes.moderation_router)
    app.include_router(bidding_lifecycle_routes.router)
    app.include_router(web_pages.router)
    app.state.live_settings = live  # the live page's stream (native SSE or nchan); None: from the environment
    app.add_middleware(BidLane)  # innermost: CORS, the body limit and the security headers apply to its replies
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match"],
            expose_headers=["ETag"],
        )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(SecurityHeaders)

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Any:
        """Where to go from the root: a browser gets the search page, a client the way in, never a 404."""
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/search", status_code=303)
        return {
            "name": "auction-hub",
            "links": {
                "search_page": "/search",
                "vehicle_page": "/vehicles/{id}",
                "dealer_desk": "/dealer",
                "my_bids": "/my-bids",
                "moderation_page": "/moderation",
                "search": "/api/v1/vehicles?q=camry",
                "vehicle": "/api/v1/vehicles/{id}",
                "suggest": "/api/v1/vehicles/suggest?q=cam",
                "live_auction_page": "/live/auctions/{auctionId}",
                "docs": "/docs",
                "openapi": "/openapi.json",
                "health": "/health",
            },
        }

    @app.get("/health", tags=["ops"])
    async def health() -> Any:
        """Liveness and the search index's state as of its latest commit."""
        try:
            await app.state.search_index.refresh_reader()  # a reader only sees other processes' commits on refresh
            state = await app.state.search_index.health()
        except SearchIndexUnavailable as exc:
            return JSONResponse({"status": "degraded", "index": {"ok": False, "detail": str(exc)}}, status_code=503)
        body = {"status": "ok" if state.ok else "degraded", "index": state.__dict__}
        return JSONResponse(body, status_code=200 if state.ok else 503)

    return app
