"""Moderated Q&A in the vehicle document: only approved items show, order-safe per question and answer."""

from __future__ import annotations

from schemas.vehicle import VehicleDocument
from search_api.schemas import vehicle_body
from streams.questions import QnaUpdate, apply_qna_update, decode_qna_change, decode_qna_updates, encode_qna_updates
from tests.pipeline import debezium_record


def question(item: int, text: str | None, position: int, at: str = "2026-01-01T00:00:00+00:00") -> QnaUpdate:
    return QnaUpdate("7", "question", item, item, text, at, position)


def answer(item: int, question_id: int, text: str | None, position: int) -> QnaUpdate:
    return QnaUpdate("7", "answer", item, question_id, text, "2026-01-02T00:00:00+00:00", position)


def apply(document: VehicleDocument | None, *updates: QnaUpdate) -> VehicleDocument:
    for update in updates:
        document = apply_qna_update(document, update) or document
    assert document is not None
    return document


def test_approved_questions_show_with_their_answer() -> None:
    doc = apply(VehicleDocument(id="7", make="Honda"), question(1, "Clean title?", 10), answer(5, 1, "Yes.", 20))
    assert [(q.id, q.text, q.answer) for q in doc.questions] == [(1, "Clean title?", "Yes.")]
    assert doc.make == "Honda"
    body = vehicle_body(doc)
    assert "qna" not in body
    assert body["questions"][0]["answeredAt"] == "2026-01-02T00:00:00+00:00"


def test_a_rejection_after_approval_stays_hidden_when_the_approval_is_replayed() -> None:
    doc = apply(None, question(1, "Clean title?", 10), question(1, None, 30))
    assert doc.questions == []
    assert apply_qna_update(doc, question(1, "Clean title?", 10)) is None
    assert apply(doc, question(1, "Clean title?", 10)).questions == []


def test_an_answer_before_its_question_waits_hidden_and_questions_are_oldest_first() -> None:
    doc = apply(None, answer(5, 2, "Two keys.", 20))
    assert doc.questions == []
    doc = apply(doc, question(2, "Keys?", 15, at="2026-01-03T00:00:00+00:00"), question(1, "Title?", 12))
    assert [(q.id, q.answer) for q in doc.questions] == [(1, None), (2, "Two keys.")]


def test_change_records_decode_to_updates_and_round_trip() -> None:
    row = {"id": 3, "vehicle_id": 7, "question_id": 1, "body": "Yes.", "status": "approved", "created_at": "t"}
    update = decode_qna_change("answer", debezium_record("answers", "c", lsn=500, after=row))
    assert update == QnaUpdate("7", "answer", 3, 1, "Yes.", "t", 500)
    pending = decode_qna_change("answer", debezium_record("answers", "u", lsn=600, after={**row, "status": "pending"}))
    assert pending is not None
    assert pending.text is None
    deleted = decode_qna_change("answer", debezium_record("answers", "d", lsn=700, before=row))
    assert deleted is not None
    assert deleted.text is None
    assert decode_qna_updates(encode_qna_updates([update])) == [update]
