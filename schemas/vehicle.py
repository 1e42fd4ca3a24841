"""The denormalized vehicle document kept in the search index: one per vehicle."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Vehicle statuses that a buyer can find in search.
SEARCHABLE_STATUSES = frozenset({"active", "in_auction"})


class DealerSummary(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    name: str | None = None
    rating: float | None = None
    city: str | None = None
    state: str | None = None
    lat: float | None = None
    lon: float | None = None


class Question(BaseModel):
    id: int
    text: str
    answer: str | None = None
    askedAt: str | None = None  # noqa: N815 - API field name from the seed
    answeredAt: str | None = None  # noqa: N815


class QnaEntry(BaseModel):
    """Internal: the last change applied to one question or answer (text None: not visible)."""

    question_id: int
    text: str | None = None
    at: str | None = None
    position: int = -1


class VehicleDocument(BaseModel):
    """Vehicle fields + dealer + the slots later sources fill (bid, approved Q&A, ERP inventory).

    `positions` records, per source (e.g. `pg.vehicles`, `pg.dealers`), the position (LSN, SCN, ...)
    of the last change applied, so a replayed or out-of-order event never overwrites newer data.
    `version` grows by one on every applied change; the Elasticsearch adapter uses it as the external
    version. A deleted vehicle is kept as a tombstone (`deleted=True`) so a late replay cannot revive it.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    vin: str | None = None
    make: str | None = None
    model: str | None = None
    trim: str | None = None
    year: int | None = None
    mileage: int | None = None
    condition_grade: float | None = None
    body_type: str | None = None
    fuel: str | None = None
    transmission: str | None = None
    drivetrain: str | None = None
    exterior_color: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    lat: float | None = None
    lon: float | None = None
    images: list[str] = Field(default_factory=list)
    description: str | None = None
    asking_price: float | None = None
    status: str | None = None
    listed_at: str | None = None
    updated_at: str | None = None
    dealer_id: int | None = None
    dealer: DealerSummary | None = None
    # Filled by later sources: live bidding, moderated Q&A, the ERP.
    currentBid: float | None = None  # noqa: N815 - the seed's API field name
    auction_id: int | None = None
    auction_status: str | None = None
    auction_starts_at: str | None = None
    auction_ends_at: str | None = None
    bid_count: int | None = None  # accepted bids on the vehicle's current lot (streams/auction_bids.py)
    questions: list[Question] = Field(default_factory=list)
    # Internal: moderated Q&A by "question:<id>" / "answer:<id>", with positions (streams/questions.py).
    qna: dict[str, QnaEntry] = Field(default_factory=dict)
    inventory: dict[str, Any] | None = None

    positions: dict[str, int] = Field(default_factory=dict)
    version: int = 0
    deleted: bool = False

    @property
    def searchable(self) -> bool:
        # ERP status drives availability too: a car the ERP holds or sold leaves search (streams/erp_documents.py).
        available = self.inventory is None or self.inventory.get("available") is not False
        return not self.deleted and self.status in SEARCHABLE_STATUSES and available

    def is_newer(self, source: str, position: int) -> bool:
        """True when `position` of `source` has not been applied to this document yet."""
        return position > self.positions.get(source, -1)
