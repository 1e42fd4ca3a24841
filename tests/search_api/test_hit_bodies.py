"""Hits answered from the engine's stored JSON read exactly as the validated documents would be."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.search.port import StoredHits
from schemas.vehicle import DealerSummary, QnaEntry, Question, VehicleDocument
from search_api.schemas import hit_bodies, vehicle_body

texts = st.none() | st.text(max_size=12)
numbers = st.none() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False, width=32)
whole = st.none() | st.integers(0, 10**7)
inventory_values = st.none() | st.booleans() | st.integers(-(10**9), 10**9)
dealers = st.none() | st.builds(DealerSummary, id=st.integers(1, 10**6), name=texts, rating=numbers, lat=numbers)
questions = st.lists(st.builds(Question, id=st.integers(1, 10**6), text=st.text(max_size=20), answer=texts), max_size=2)
documents = st.builds(
    VehicleDocument,
    id=st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
    make=texts,
    year=whole,
    mileage=whole,
    condition_grade=numbers,
    asking_price=numbers,
    currentBid=numbers,
    lat=numbers,
    images=st.lists(st.text(max_size=8), max_size=2),
    dealer_id=whole,
    dealer=dealers,
    questions=questions,
    qna=st.dictionaries(st.text(max_size=4), st.builds(QnaEntry, question_id=st.integers(1, 99)), max_size=2),
    inventory=st.none() | st.dictionaries(st.text(max_size=6), inventory_values, max_size=3),
    positions=st.dictionaries(st.sampled_from(["pg.vehicles", "erp.inventory"]), st.integers(0, 10**12), max_size=2),
    version=st.integers(0, 10**6),
    deleted=st.booleans(),
)


def stored(document: VehicleDocument) -> bytes:
    """What the tantivy adapter stores for a document."""
    return document.__pydantic_serializer__.to_json(document)


@settings(max_examples=200, deadline=None)
@given(st.lists(documents, max_size=4))
def test_stored_hits_answer_exactly_what_the_documents_would(hits: list[VehicleDocument]) -> None:
    from_stored = StoredHits([stored(document) for document in hits])
    assert orjson.dumps(hit_bodies(from_stored)) == orjson.dumps([vehicle_body(document) for document in hits])
    assert from_stored == hits
    assert list(from_stored) == hits


def test_a_hit_stored_by_another_version_of_the_document_is_validated() -> None:
    document = VehicleDocument(
        id="v1",
        make="Ford",
        asking_price=15000,
        dealer=DealerSummary(id=3, name="Lone Star Motors"),
        questions=[Question(id=1, text="Any rust?")],
    )
    written: dict[str, Any] = orjson.loads(stored(document))
    written["retired_field"] = "x"  # a field this code no longer has
    del written["bid_count"]  # and one it added since
    nested_dealer: dict[str, Any] = orjson.loads(stored(document))
    del nested_dealer["dealer"]["rating"]
    nested_question: dict[str, Any] = orjson.loads(stored(document))
    nested_question["questions"][0]["retired"] = True
    hits = StoredHits([orjson.dumps(version) for version in (written, nested_dealer, nested_question)])
    assert hit_bodies(hits) == [vehicle_body(document)] * 3


def test_stored_hits_are_a_read_only_sequence_of_documents() -> None:
    documents = [VehicleDocument(id=str(n), year=2000 + n) for n in range(3)]
    hits = StoredHits([stored(document) for document in documents])
    assert len(hits) == 3
    assert hits[1] == documents[1]
    assert hits[-1] is hits[2]  # validated once
    assert hits[1:] == documents[1:]
    assert hits.fields[0]["year"] == 2000
    assert hits != documents[:2]
    assert hits != "not hits"
