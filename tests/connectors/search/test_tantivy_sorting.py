"""The sort keys written with every document are the keys `sort_key` gives (cursors and ranges are built with it)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connectors.search.fields import SORT_FIELDS
from connectors.search.tantivy_sorting import MAX_VALUE, document_sort_keys, sort_key, sort_key_field
from schemas.vehicle import VehicleDocument

prices = st.none() | st.floats(min_value=-10, max_value=5e7, allow_nan=False)
ends = st.none() | st.sampled_from(["2026-12-06T10:00:00Z", "2030-01-01T00:00:00+00:00", "1970-01-01T00:00:00Z"])


@given(
    vehicle_id=st.one_of(st.integers(0, 2**33).map(str), st.text("abc-", min_size=1, max_size=5)),
    asking_price=prices,
    current_bid=prices,
    year=st.none() | st.integers(1900, 2030),
    mileage=st.none() | st.integers(0, 2**33),
    condition_grade=st.none() | st.floats(min_value=0, max_value=5, allow_nan=False),
    auction_ends_at=ends,
)
def test_document_sort_keys_are_sort_keys(
    vehicle_id: str,
    asking_price: float | None,
    current_bid: float | None,
    year: int | None,
    mileage: int | None,
    condition_grade: float | None,
    auction_ends_at: str | None,
) -> None:
    document = VehicleDocument.model_validate(
        {
            "id": vehicle_id,
            "asking_price": asking_price,
            "currentBid": current_bid,
            "year": year,
            "mileage": mileage,
            "condition_grade": condition_grade,
            "auction_ends_at": auction_ends_at,
        }
    )
    keys = document_sort_keys(document)
    expected = {
        sort_key_field(name, order): sort_key(name, order, getattr(document, name), document.id)
        for name in SORT_FIELDS
        for order in ("asc", "desc")
    }
    assert keys == expected


def test_a_missing_value_sorts_last_both_ways() -> None:
    keys = document_sort_keys(VehicleDocument.model_validate({"id": "7", "year": MAX_VALUE * 2}))
    assert keys["sort_asc_year"] < keys["sort_asc_mileage"]
    assert keys["sort_desc_year"] < keys["sort_desc_mileage"]
