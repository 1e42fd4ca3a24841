"""Excel bulk upload of cars: the template, and reading an uploaded `.xlsx` into validated rows and row errors.

Each data row is checked with the same rules as `POST /cars` (`marketplace.listings.CarSpec`). A row with any
problem is rejected whole; every problem is reported as (row number as Excel shows it, column, reason).
Formulas are never evaluated (the workbook is opened with `data_only=False` and a formula cell rejects its
row), because the value Excel cached for a formula is whatever the last program that saved the file wrote.
The file is read with openpyxl's streaming reader (`read_only=True`), after checks on its size, its type
and its uncompressed size (a zip bomb is refused before any XML is parsed).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Final

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.worksheet.datavalidation import DataValidation
from pydantic import ValidationError

from hub.errors import AppError, InvalidParameter, PayloadTooLarge
from marketplace.catalog import BODY_TYPES, DRIVETRAINS, FUELS, TRANSMISSIONS
from marketplace.listings import DEALER_STATUSES, MAX_MILEAGE, CarSpec, last_model_year, parse_decimal

XLSX_MEDIA_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_FILE_BYTES: Final = 15 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES: Final = 200 * 1024 * 1024
MAX_ROWS: Final = 10_000
MAX_COLUMNS: Final = 60
SHEET_NAME: Final = "Cars"


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    rule: str
    example: str


COLUMNS: Final = (
    Column(
        "vin", True, "17 characters, no I/O/Q, valid check digit (position 9); once per dealer", "4T1BF1FK5CU123456"
    ),
    Column("make", True, "manufacturer, e.g. Toyota (known makes are spelled as in the catalog)", "Toyota"),
    Column("model", True, "model name", "Camry"),
    Column("trim", False, "trim level", "SE"),
    Column("year", True, f"model year, 1981-{last_model_year()}", "2021"),
    Column("mileage", True, f"odometer miles, 0-{MAX_MILEAGE:,} (45,000 and 45000 both work)", "45000"),
    Column("condition_grade", True, "0 (parts only) to 5 (like new), one decimal", "4.2"),
    Column("body_type", True, ", ".join(sorted(BODY_TYPES)), "sedan"),
    Column("fuel", True, ", ".join(sorted(FUELS)), "gasoline"),
    Column("transmission", True, ", ".join(sorted(TRANSMISSIONS)), "automatic"),
    Column("drivetrain", True, ", ".join(sorted(DRIVETRAINS)), "fwd"),
    Column("exterior_color", True, "colour name", "Blue"),
    Column("zip", False, "5-digit US ZIP of the lot (empty: your dealership's); gives city and state", "80264"),
    Column("asking_price", True, "USD, up to 2 decimals ($23,900 works)", "23900"),
    Column("status", False, f"{', '.join(DEALER_STATUSES)} (empty: active)", "active"),
    Column("description", False, "free text, up to 5,000 characters", "One owner, service records"),
    Column("images", False, "https:// image URLs separated by |", "https://example.com/1.jpg"),
)
COLUMN_NAMES: Final = tuple(column.name for column in COLUMNS)
REQUIRED_COLUMNS: Final = tuple(column.name for column in COLUMNS if column.required)
# Headers people write instead of ours.
ALIASES: Final[dict[str, str]] = {
    "price": "asking_price", "color": "exterior_color", "colour": "exterior_color", "condition": "condition_grade",
    "grade": "condition_grade", "zip_code": "zip", "zipcode": "zip", "postal_code": "zip", "odometer": "mileage",
    "miles": "mileage", "model_year": "year", "body": "body_type", "image_urls": "images",
}  # fmt: skip
_INTEGER_COLUMNS: Final = frozenset({"year", "mileage"})
_DECIMAL_COLUMNS: Final = frozenset({"asking_price", "condition_grade"})


class UnsupportedFile(AppError):
    """The upload is not an Excel .xlsx workbook (415)."""

    status_code = 415
    code = "unsupported_media_type"

    def __init__(self, message: str) -> None:
        super().__init__(f"file: {message}", problems=[{"parameter": "file", "message": message}])


class FileTooLarge(PayloadTooLarge):
    def __init__(self, message: str) -> None:
        super().__init__(f"file: {message}", problems=[{"parameter": "file", "message": message}])


@dataclass(frozen=True)
class RowProblem:
    row: int
    column: str
    reason: str


@dataclass
class ParsedUpload:
    rows: list[tuple[int, CarSpec]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    data_rows: int = 0

    @property
    def rejected_rows(self) -> int:
        return len({problem.row for problem in self.problems})


# -- the template ---------------------------------------------------------------------------------------------


def template_workbook() -> bytes:
    """The downloadable template: a `Cars` sheet with the headers and pick lists, and an `Instructions` sheet."""
    workbook = Workbook()
    cars = workbook.active
    assert cars is not None  # noqa: S101 - a new workbook always has a sheet
    cars.title = SHEET_NAME
    cars.append(list(COLUMN_NAMES))
    for cell in cars[1]:
        cell.font = Font(bold=True)
    cars.freeze_panes = "A2"
    for index, column in enumerate(COLUMNS, start=1):
        letter = cars.cell(row=1, column=index).column_letter
        cars.column_dimensions[letter].width = max(12, len(column.name) + 4)
        if column.name in ("zip", "vin"):
            cars.column_dimensions[letter].number_format = "@"  # text: keeps a ZIP's leading zeros
        choices = {"body_type": BODY_TYPES, "fuel": FUELS, "transmission": TRANSMISSIONS,
                   "drivetrain": DRIVETRAINS, "status": frozenset(DEALER_STATUSES)}.get(column.name)  # fmt: skip
        if choices:
            validation = DataValidation(type="list", formula1=f'"{",".join(sorted(choices))}"', allow_blank=True)
            validation.add(f"{letter}2:{letter}{MAX_ROWS + 1}")
            cars.add_data_validation(validation)
    guide = workbook.create_sheet("Instructions")
    guide.append(["column", "required", "what to enter", "example"])
    for cell in guide[1]:
        cell.font = Font(bold=True)
    for column in COLUMNS:
        guide.append([column.name, "yes" if column.required else "no", column.rule, column.example])
    guide.append([])
    for line in (
        f"Fill the {SHEET_NAME} sheet, one car per row from row 2; keep the header row. Up to {MAX_ROWS:,} rows.",
        "Enter values, not formulas: a cell with a formula rejects its row.",
        "Rows with problems are reported (row, column, reason) and skipped; the other rows are listed.",
        "A VIN you already list is skipped as a duplicate, so uploading the same file twice is safe.",
    ):
        guide.append([line])
    for letter, width in (("A", 18), ("B", 10), ("C", 80), ("D", 30)):
        guide.column_dimensions[letter].width = width
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# -- reading an upload ----------------------------------------------------------------------------------------


def check_file(data: bytes, filename: str | None) -> None:
    """Refuses what is not a plausible .xlsx before openpyxl sees it: empty, too big, wrong type, zip bomb."""
    if not data:
        raise InvalidParameter(
            "file", "the file is empty; fill the template from GET /api/v1/cars/bulk-upload/template"
        )
    if len(data) > MAX_FILE_BYTES:
        raise FileTooLarge(f"the file is {len(data):,} bytes; the limit is {MAX_FILE_BYTES:,} (split it)")
    suffix = (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnsupportedFile("this is a legacy .xls workbook; save it as Excel Workbook (.xlsx)")
    if suffix not in ("", "xlsx") or not data.startswith(b"PK\x03\x04"):
        raise UnsupportedFile(f"upload an Excel .xlsx workbook (got {filename or 'a file'} that is not one)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise UnsupportedFile("the file is damaged or not an .xlsx workbook") from exc
    if "xl/workbook.xml" not in {member.filename for member in members}:
        raise UnsupportedFile("the archive is not an Excel workbook (no xl/workbook.xml)")
    if sum(member.file_size for member in members) > MAX_UNCOMPRESSED_BYTES:
        raise FileTooLarge(f"the workbook unpacks to more than {MAX_UNCOMPRESSED_BYTES:,} bytes")


def parse_upload(data: bytes, filename: str | None) -> ParsedUpload:
    """Check and read an uploaded workbook (CPU-bound: run it in a worker thread)."""
    check_file(data, filename)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=False, keep_links=False)
    except Exception as exc:  # openpyxl raises many types on malformed input; all mean "not readable"
        raise UnsupportedFile(f"the workbook cannot be read ({type(exc).__name__}); save it again as .xlsx") from exc
    try:
        names = workbook.sheetnames
        sheet = workbook[SHEET_NAME] if SHEET_NAME in names else workbook[names[0]]
        return _read_sheet(sheet.iter_rows(values_only=False))
    finally:
        workbook.close()


def _normalize_header(value: Any) -> str:
    name = re.sub(r"[\s\-]+", "_", str(value).strip().lower()).rstrip("*")
    return ALIASES.get(name, name)


def _read_header(header: tuple[Any, ...]) -> tuple[dict[int, str], list[str]]:
    positions: dict[int, str] = {}
    ignored: list[str] = []
    for index, cell in enumerate(header[:MAX_COLUMNS]):
        if cell.value is None or str(cell.value).strip() == "":
            continue
        name = _normalize_header(cell.value)
        if name not in COLUMN_NAMES:
            ignored.append(str(cell.value))
            continue
        if name in positions.values():
            raise InvalidParameter("file", f"the header row has the column {name!r} twice")
        positions[index] = name
    missing = [name for name in REQUIRED_COLUMNS if name not in positions.values()]
    if missing:
        raise InvalidParameter(
            "file", f"the header row (row 1) lacks the columns {', '.join(missing)}; start from the template"
        )
    return positions, ignored


def _read_sheet(rows: Any) -> ParsedUpload:
    header = next(rows, None)
    if header is None:
        raise InvalidParameter("file", "the workbook is empty; fill the template's Cars sheet")
    positions, ignored = _read_header(header)
    parsed = ParsedUpload(ignored_columns=ignored)
    first_row_of_vin: dict[str, int] = {}
    for row_number, cells in enumerate(rows, start=2):
        values, problems = _row_values(row_number, cells, positions)
        if values is None:
            continue  # a blank row
        parsed.data_rows += 1
        if parsed.data_rows > MAX_ROWS:
            raise FileTooLarge(f"more than {MAX_ROWS:,} cars in one file; split it into several uploads")
        spec = _validate_row(row_number, values, problems)
        if spec is not None:
            first = first_row_of_vin.setdefault(spec.vin, row_number)
            if first != row_number:
                problems.append(RowProblem(row_number, "vin", f"the same VIN is on row {first}; one row per car"))
            else:
                parsed.rows.append((row_number, spec))
        parsed.problems.extend(problems)
    if parsed.data_rows == 0:
        raise InvalidParameter("file", "the Cars sheet has a header but no cars; one car per row from row 2")
    return parsed


def _row_values(
    row_number: int, cells: tuple[Any, ...], positions: dict[int, str]
) -> tuple[dict[str, Any] | None, list[RowProblem]]:
    values: dict[str, Any] = {}
    problems: list[RowProblem] = []
    blank = True
    for index, name in positions.items():
        if index >= len(cells):
            continue
        cell = cells[index]
        value = cell.value
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        blank = False
        if cell.data_type == "f":
            problems.append(RowProblem(row_number, name, "the cell holds a formula; enter the value itself"))
        elif cell.data_type == "e":
            problems.append(RowProblem(row_number, name, f"the cell holds the error {value}; enter a value"))
        else:
            values[name] = _cell_value(name, value)
    return (None if blank else values), problems


def _cell_value(name: str, value: Any) -> Any:
    """Undo what Excel does to typed-in values: ZIPs and VINs as numbers, 45,000 as text, 2021.0 for 2021."""
    if isinstance(value, bool) or isinstance(value, datetime | date | time):
        return value  # the model refuses them with a clear type error
    if name == "zip" and isinstance(value, int | float) and float(value).is_integer():
        return f"{int(value):05d}"
    if name in _INTEGER_COLUMNS:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return value.strip().replace(",", "").replace(" ", "")
    if name in _DECIMAL_COLUMNS:
        return parse_decimal(value)
    if name == "images":
        return [url for url in re.split(r"[|\s]+", str(value)) if url]
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    return value


def _validate_row(row_number: int, values: dict[str, Any], problems: list[RowProblem]) -> CarSpec | None:
    reported = {problem.column for problem in problems}
    try:
        spec = CarSpec.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            column = str(error["loc"][0]) if error["loc"] else "row"
            if column in reported:
                continue
            reported.add(column)
            reason = "required; the cell is empty" if error["type"] == "missing" else _reason(error["msg"])
            problems.append(RowProblem(row_number, column, reason))
        return None
    return None if problems else spec


def _reason(message: str) -> str:
    return message.removeprefix("Value error, ")
