"""POST /api/v1/cars/bulk-upload and its template: workbooks generated with openpyxl, real PostgreSQL."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from openpyxl import Workbook, load_workbook

from marketplace.bulk_upload import COLUMN_NAMES, XLSX_MEDIA_TYPE
from tests.marketplace.api_client import Member, marketplace_client, sign_up
from tests.marketplace.cars_helpers import car_fields, dealer_member, new_vin

HEADER = list(COLUMN_NAMES)


@pytest.fixture
async def client(migrated_database: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with marketplace_client(migrated_database, tmp_path / "index") as http:
        yield http


@pytest.fixture
async def dealer(client: httpx.AsyncClient, migrated_database: str) -> Member:
    member, _ = await dealer_member(client, migrated_database, "bulk@example.com")
    return member


def row(**overrides: Any) -> list[Any]:
    fields = car_fields(**overrides)
    return [fields.get(name) for name in HEADER]


def workbook_bytes(rows: Sequence[Sequence[Any]], header: Sequence[Any] = HEADER, write_only: bool = False) -> bytes:
    workbook = Workbook(write_only=write_only)
    sheet = workbook.create_sheet("Cars") if write_only else workbook.active
    assert sheet is not None
    if not write_only:
        sheet.title = "Cars"
    sheet.append(list(header))
    for values in rows:
        sheet.append(list(values))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def upload(
    client: httpx.AsyncClient,
    member: Member,
    content: bytes,
    filename: str = "cars.xlsx",
    media_type: str = XLSX_MEDIA_TYPE,
) -> httpx.Response:
    return await client.post(
        "/api/v1/cars/bulk-upload", files={"file": (filename, content, media_type)}, headers=member.headers
    )


def car_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        found = conn.execute("SELECT count(*) FROM vehicles WHERE deleted_at IS NULL").fetchone()
    assert found is not None
    return int(found[0])


async def test_template_downloads_and_a_filled_template_uploads(
    client: httpx.AsyncClient, dealer: Member, migrated_database: str
) -> None:
    response = await client.get("/api/v1/cars/bulk-upload/template", headers=dealer.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == XLSX_MEDIA_TYPE
    assert "cars-template.xlsx" in response.headers["content-disposition"]
    workbook = load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["Cars", "Instructions"]
    cars = workbook["Cars"]
    assert [cell.value for cell in cars[1]] == HEADER
    documented = {values[0] for values in workbook["Instructions"].iter_rows(min_row=2, values_only=True)}
    assert set(HEADER) <= documented
    for values in (row(), row(status="draft", images="https://example.com/a.jpg|https://example.com/b.jpg")):
        cars.append(values)
    filled = io.BytesIO()
    workbook.save(filled)
    result = await upload(client, dealer, filled.getvalue())
    assert result.status_code == 200, result.text
    data = result.json()["data"]
    assert (data["created_count"], data["rejected_count"], data["rejected"]) == (2, 0, [])
    assert [item["row"] for item in data["created"]] == [2, 3]
    second = await client.get(f"/api/v1/cars/{data['created'][1]['id']}", headers=dealer.headers)
    assert second.json()["data"]["images"] == ["https://example.com/a.jpg", "https://example.com/b.jpg"]
    assert second.json()["data"]["status"] == "draft"
    assert (await client.get("/api/v1/cars/bulk-upload/template")).status_code == 401


async def test_good_rows_are_created_and_reuploading_creates_nothing(
    client: httpx.AsyncClient, dealer: Member, migrated_database: str
) -> None:
    content = workbook_bytes([row() for _ in range(25)])
    first = (await upload(client, dealer, content)).json()["data"]
    assert (first["rows"], first["created_count"], first["duplicate_count"]) == (25, 25, 0)
    again = await upload(client, dealer, content)
    assert again.status_code == 200
    repeat = again.json()["data"]
    assert (repeat["created_count"], repeat["duplicate_count"], repeat["rejected_count"]) == (0, 25, 0)
    assert {item["id"] for item in repeat["duplicates"]} == {item["id"] for item in first["created"]}
    assert car_count(migrated_database) == 25


async def test_rows_without_a_zip_take_the_dealerships(
    client: httpx.AsyncClient, dealer: Member, migrated_database: str
) -> None:
    header = [name for name in HEADER if name != "zip"]
    fields = car_fields()
    no_zip_column = workbook_bytes([[fields.get(name) for name in header]], header)
    data = (await upload(client, dealer, no_zip_column)).json()["data"]
    assert data["created_count"] == 1, data
    with_blank = (await upload(client, dealer, workbook_bytes([row(zip=None), row(zip="79605")]))).json()["data"]
    assert with_blank["created_count"] == 2, with_blank
    with psycopg.connect(migrated_database) as conn:
        zips = [z for (z,) in conn.execute("SELECT zip FROM vehicles ORDER BY id")]
    assert zips == ["80202", "80202", "79605"]


async def test_mixed_rows_report_row_column_and_reason(
    client: httpx.AsyncClient, dealer: Member, migrated_database: str
) -> None:
    good_vin = new_vin()
    bad_digit = good_vin[:8] + ("0" if good_vin[8] != "0" else "1") + good_vin[9:]
    rows = [
        row(vin=good_vin, mileage="45,000", asking_price="$23,900.50", body_type="SUV"),  # 2: good, loosely typed
        row(vin=bad_digit),  # 3
        row(year=1975, condition_grade=7),  # 4: two problems
        row(zip="99999"),  # 5
        [None] * len(HEADER),  # 6: blank, skipped
        row(vin=good_vin),  # 7: same VIN as row 2
        row(make=None),  # 8
        row(year=2020.0, zip=98164),  # 9: good, numbers as Excel stores them
        row(fuel="steam"),  # 10
    ]
    response = await upload(client, dealer, workbook_bytes(rows))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["rows"] == 8
    assert [item["row"] for item in data["created"]] == [2, 9]
    rejected = {(item["row"], item["column"]): item["reason"] for item in data["rejected"]}
    assert set(rejected) == {(3, "vin"), (4, "year"), (4, "condition_grade"), (5, "zip"), (7, "vin"), (8, "make"),
                             (10, "fuel")}  # fmt: skip
    assert "check digit" in rejected[(3, "vin")]
    assert "1981" in rejected[(4, "year")]
    assert "unknown ZIP" in rejected[(5, "zip")]
    assert "row 2" in rejected[(7, "vin")]
    assert "empty" in rejected[(8, "make")]
    assert data["rejected_count"] == 6
    with psycopg.connect(migrated_database) as conn:
        stored = conn.execute("SELECT mileage, asking_price, body_type FROM vehicles WHERE vin = %s", (good_vin,))
        assert stored.fetchone() == (45_000, pytest.approx(23_900.5), "suv")


async def test_formulas_are_rejected_never_evaluated(client: httpx.AsyncClient, dealer: Member) -> None:
    formula = row(mileage="=1000*45")
    error = row()
    good = row(description="=this is text, not a formula")
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Cars"
    sheet.append(HEADER)
    for values in (formula, error, good):
        sheet.append(values)
    sheet.cell(row=3, column=HEADER.index("asking_price") + 1).value = "#DIV/0!"
    sheet.cell(row=3, column=HEADER.index("asking_price") + 1).data_type = "e"
    sheet.cell(row=4, column=HEADER.index("description") + 1).data_type = "s"  # a string that starts with '='
    buffer = io.BytesIO()
    workbook.save(buffer)
    data = (await upload(client, dealer, buffer.getvalue())).json()["data"]
    assert [(item["row"], item["column"]) for item in data["rejected"]] == [(2, "mileage"), (3, "asking_price")]
    assert "formula" in data["rejected"][0]["reason"]
    assert "#DIV/0!" in data["rejected"][1]["reason"]
    assert [item["row"] for item in data["created"]] == [4]


@pytest.mark.parametrize(
    ("content", "filename", "media_type"),
    [
        (b"vin,make\n4T1BF1FK5CU123456,Toyota\n", "cars.csv", "text/csv"),
        (b"vin,make\n4T1BF1FK5CU123456,Toyota\n", "cars.xlsx", XLSX_MEDIA_TYPE),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500, "cars.xls", "application/vnd.ms-excel"),
        (b"PK\x03\x04 this is no zip archive", "cars.xlsx", XLSX_MEDIA_TYPE),
        (b"%PDF-1.7", "cars.pdf", "application/pdf"),
    ],
)
async def test_wrong_file_types_are_415_naming_file(
    client: httpx.AsyncClient, dealer: Member, content: bytes, filename: str, media_type: str
) -> None:
    response = await upload(client, dealer, content, filename, media_type)
    assert response.status_code == 415, response.text
    assert response.json()["error"]["problems"][0]["parameter"] == "file"


async def test_a_zip_that_is_not_a_workbook_is_refused(client: httpx.AsyncClient, dealer: Member) -> None:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    response = await upload(client, dealer, buffer.getvalue())
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "empty"),
        (workbook_bytes([]), "no cars"),
        (workbook_bytes([[None] * len(HEADER)] * 3), "no cars"),
        (workbook_bytes([row()], header=["vin", "make", "price"]), "lacks the columns"),
        (workbook_bytes([row()], header=[*HEADER[:-1], "vin"]), "twice"),
    ],
)
async def test_empty_files_and_bad_headers_are_422_naming_file(
    client: httpx.AsyncClient, dealer: Member, content: bytes, says: str
) -> None:
    response = await upload(client, dealer, content)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["problems"][0]["parameter"] == "file"
    assert says in error["message"]


async def test_oversized_files_are_413(client: httpx.AsyncClient, dealer: Member) -> None:
    response = await upload(client, dealer, b"PK\x03\x04" + b"\0" * (16 * 1024 * 1024))
    assert response.status_code == 413
    too_many = workbook_bytes([row() for _ in range(10_001)], write_only=True)
    response = await upload(client, dealer, too_many)
    assert response.status_code == 413
    assert "10,000" in response.json()["error"]["message"]


async def test_only_dealers_upload(client: httpx.AsyncClient, migrated_database: str) -> None:
    buyer = await sign_up(client, "nobulk@example.com")
    response = await upload(client, buyer, workbook_bytes([row()]))
    assert response.status_code == 403
    assert car_count(migrated_database) == 0


@pytest.mark.timeout(300)
async def test_ten_thousand_rows_in_under_30_seconds(
    client: httpx.AsyncClient, dealer: Member, migrated_database: str
) -> None:
    content = workbook_bytes([row() for _ in range(10_000)], write_only=True)
    started = time.perf_counter()
    response = await upload(client, dealer, content)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["created_count"], data["rejected_count"]) == (10_000, 0)
    assert elapsed < 30, f"10,000 rows took {elapsed:.1f}s"
    assert car_count(migrated_database) == 10_000
