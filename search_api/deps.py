"""Request dependencies of the search API; the service is built in the app's lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from search_api.service import VehicleSearchService


async def get_search_service(request: Request) -> VehicleSearchService:  # async: FastAPI runs sync ones in threads
    service: VehicleSearchService = request.app.state.search_service
    return service


SearchServiceDep = Annotated[VehicleSearchService, Depends(get_search_service)]
