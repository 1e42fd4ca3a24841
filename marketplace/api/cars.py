"""/api/v1/cars: dealers list, change and delete their cars, one by one or from an Excel workbook."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Path, Query, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from marketplace.accounts import CurrentUser
from marketplace.api.deps import CurrentUserDep, PoolDep, require_roles
from marketplace.api.envelope import Page, paginated, success
from marketplace.bulk_upload import MAX_FILE_BYTES, XLSX_MEDIA_TYPE, FileTooLarge, parse_upload, template_workbook
from marketplace.listing_batches import CarBatcher
from marketplace.listings import CarChanges, CarFilters, CarSpec, Listings

router = APIRouter(prefix="/api/v1/cars", tags=["cars"])

CarId = Annotated[int, Path(ge=1, le=2**62)]
Dealer = Annotated[CurrentUser, Depends(require_roles("dealer", "admin"))]
Sort = Literal["-created", "created", "price", "-price", "year", "-year", "mileage", "-mileage"]


async def get_listings(request: Request, pool: PoolDep) -> Listings:
    batcher: CarBatcher | None = getattr(request.app.state, "car_batcher", None)
    if batcher is None or batcher.pool is not pool:  # one per app and pool, made on first use
        batcher = request.app.state.car_batcher = CarBatcher(pool)
    return Listings(pool, batcher)


ListingsDep = Annotated[Listings, Depends(get_listings)]


def car_body(car: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": car["id"],
        "dealer_id": car["dealer_id"],
        "vin": car["vin"],
        "make": car["make"],
        "model": car["model"],
        "trim": car["trim"],
        "year": car["year"],
        "mileage": car["mileage"],
        "condition_grade": float(car["condition_grade"]),
        "body_type": car["body_type"],
        "fuel": car["fuel"],
        "transmission": car["transmission"],
        "drivetrain": car["drivetrain"],
        "exterior_color": car["exterior_color"],
        "location": {
            "zip": car["zip"],
            "city": car["city"],
            "state": car["state"].strip(),
            "lat": car["lat"],
            "lon": car["lon"],
        },  # fmt: skip
        "asking_price": float(car["asking_price"]),
        "status": car["status"],
        "description": car["description"],
        "images": list(car["images"] or []),
        "created_at": car["created_at"].isoformat(),
        "updated_at": car["updated_at"].isoformat(),
    }


@router.post("", status_code=201)
async def create_car(body: CarSpec, user: Dealer, listings: ListingsDep) -> dict[str, Any]:
    """List a car (dealers): specification validated, location from the ZIP code."""
    return success(car_body(await listings.create(user, body)))


@router.get("")
async def list_cars(
    user: Dealer,
    listings: ListingsDep,
    page: Annotated[Page, Query()],
    status: Annotated[Literal["draft", "active", "in_auction", "sold", "withdrawn"] | None, Query()] = None,
    make: Annotated[str | None, Query(max_length=60)] = None,
    model: Annotated[str | None, Query(max_length=60)] = None,
    vin: Annotated[str | None, Query(min_length=17, max_length=17)] = None,
    year_min: Annotated[int | None, Query(ge=1900, le=2100)] = None,
    year_max: Annotated[int | None, Query(ge=1900, le=2100)] = None,
    price_min: Annotated[Decimal | None, Query(ge=0, le=10**10)] = None,
    price_max: Annotated[Decimal | None, Query(ge=0, le=10**10)] = None,
    mileage_max: Annotated[int | None, Query(ge=0, le=10**7)] = None,
    condition_min: Annotated[Decimal | None, Query(ge=0, le=5)] = None,
    dealer_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    sort: Annotated[Sort, Query()] = "-created",
) -> dict[str, Any]:
    """The signed-in dealer's inventory, filtered and paged (admins: every dealer's, or `dealer_id`'s)."""
    filters = CarFilters(
        status=status, make=make, model=model, vin=vin.upper() if vin else None, year_min=year_min,
        year_max=year_max, price_min=price_min, price_max=price_max, mileage_max=mileage_max,
        condition_min=condition_min, dealer_id=dealer_id, sort=sort,
    )  # fmt: skip
    cars, total = await listings.inventory(user, filters, page.limit, page.offset)
    return paginated([car_body(car) for car in cars], page, total)


@router.get("/bulk-upload/template", response_class=Response)
async def bulk_upload_template(_: CurrentUserDep) -> Response:
    """The Excel template for bulk upload: a Cars sheet with the columns and an Instructions sheet."""
    content = await run_in_threadpool(template_workbook)
    return Response(
        content,
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="cars-template.xlsx"'},
    )


@router.post("/bulk-upload")
async def bulk_upload(
    user: Dealer, listings: ListingsDep, file: Annotated[UploadFile, File(description="an .xlsx workbook")]
) -> dict[str, Any]:
    """Create cars from an .xlsx workbook: created rows, duplicates (VIN already listed) and rejected rows."""
    dealer_id = await listings.dealer_of(user)
    data = await file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise FileTooLarge(f"the file is over {MAX_FILE_BYTES:,} bytes (split it)")
    parsed = await run_in_threadpool(parse_upload, data, file.filename)
    result = await listings.create_many(dealer_id, parsed.rows)
    rejected = sorted(parsed.problems, key=lambda problem: problem.row)
    return success(
        {
            "rows": parsed.data_rows,
            "created_count": len(result.created),
            "duplicate_count": len(result.duplicates),
            "rejected_count": parsed.rejected_rows,
            "created": [{"row": row, "id": car_id, "vin": vin} for row, car_id, vin in result.created],
            "duplicates": [
                {"row": row, "id": car_id, "vin": vin, "reason": f"VIN {vin} is already listed as car {car_id}"}
                for row, car_id, vin in result.duplicates
            ],
            "rejected": [{"row": p.row, "column": p.column, "reason": p.reason} for p in rejected],
            "ignored_columns": parsed.ignored_columns,
        }
    )


@router.get("/{car_id}")
async def get_car(car_id: CarId, user: CurrentUserDep, listings: ListingsDep) -> dict[str, Any]:
    """One car (any signed-in user; drafts and withdrawn cars only their dealer and admins)."""
    return success(car_body(await listings.get(user, car_id)))


@router.patch("/{car_id}")
async def update_car(car_id: CarId, body: CarChanges, user: CurrentUserDep, listings: ListingsDep) -> dict[str, Any]:
    """Change a car's specification, price or status (draft, active, withdrawn): its dealer or an admin."""
    return success(car_body(await listings.update(user, car_id, body)))


@router.delete("/{car_id}")
async def delete_car(car_id: CarId, user: CurrentUserDep, listings: ListingsDep) -> dict[str, Any]:
    """Delete a car (its dealer or an admin); it leaves search, and its VIN may be listed again."""
    await listings.delete(user, car_id)
    return success(None, f"car {car_id} deleted")
