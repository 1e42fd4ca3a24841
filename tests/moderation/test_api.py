"""Q&A routes over real PostgreSQL: submission, what authors see, the moderators' queue and who may use it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from marketplace.migrate import apply_migrations
from tests.marketplace.api_client import Member, marketplace_client, sign_up
from tests.moderation.conftest import Listing, create_listing


@dataclass
class Api:
    client: httpx.AsyncClient
    listing: Listing
    buyer: Member
    other_buyer: Member
    owner: Member
    other_dealer: Member
    moderator: Member
    admin: Member


@pytest.fixture(scope="module")
async def api(database_factory: object, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    url = database_factory("moderation_api")  # type: ignore[operator]
    apply_migrations(url)
    index = tmp_path_factory.mktemp("moderation_api_index")
    async with marketplace_client(url, Path(index)) as client:
        members = [await sign_up(client, f"{name}@example.com", role, url) for name, role in (
            ("buyer", "buyer"), ("buyer2", "buyer"), ("owner", "dealer"), ("dealer2", "dealer"),
            ("mod", "moderator"), ("admin", "admin"))]  # fmt: skip
        listing = create_listing(url)
        # The listing belongs to the signed-up dealer.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE dealers SET owner_id = %s WHERE owner_id = %s", (members[2].id, listing.dealer_owner_id)
            )
        yield Api(client, listing, *members)


async def ask(api: Api, member: Member | None, text: str, vehicle_id: int | None = None) -> httpx.Response:
    headers = member.headers if member else {}
    return await api.client.post(f"/api/v1/vehicles/{vehicle_id or api.listing.vehicle_id}/questions",
                                 json={"text": text}, headers=headers)  # fmt: skip


async def test_a_buyer_asks_and_follows_the_status(api: Api) -> None:
    created = await ask(api, api.buyer, "Pay with 4111 1111 1111 1111?")
    assert created.status_code == 201, created.text
    item = created.json()["data"]
    assert (item["status"], item["text"], item["redactions"]) == ("pending", "Pay with [card number removed]?",
                                                                  ["CREDIT_CARD"])  # fmt: skip
    assert "scores" not in item
    path = f"/api/v1/questions/{item['item_id']}"
    assert (await api.client.get(path, headers=api.buyer.headers)).json()["data"]["status"] == "pending"
    assert (await api.client.get(path, headers=api.owner.headers)).status_code == 200
    staff_view = (await api.client.get(path, headers=api.moderator.headers)).json()["data"]
    assert "attempts" in staff_view
    other = await api.client.get(path, headers=api.other_buyer.headers)
    assert other.status_code == 403
    assert other.json()["status"] == "error"
    # Nothing of it ever reached the database in clear.
    assert api.listing.sql("SELECT count(*) FROM questions WHERE body LIKE %s", ("%4111%",)) == [(0,)]


async def test_who_may_ask(api: Api) -> None:
    assert (await ask(api, None, "Hi?")).status_code == 401
    assert (await ask(api, api.owner, "Own car?")).status_code == 403
    assert (await ask(api, api.moderator, "Hi?")).status_code == 403
    assert (await ask(api, api.buyer, "Hi?", vehicle_id=999_999)).status_code == 404
    empty = await ask(api, api.buyer, "   ")
    assert empty.status_code == 422
    assert "text" in empty.text
    assert (await ask(api, api.other_dealer, "Any rust?")).status_code == 201


async def test_only_the_listing_dealer_answers_approved_questions(api: Api) -> None:
    question = (await ask(api, api.buyer, "How many keys?")).json()["data"]["item_id"]
    path = f"/api/v1/questions/{question}/answers"
    body = {"text": "Two keys."}
    assert (await api.client.post(path, json=body, headers=api.buyer.headers)).status_code == 403
    assert (await api.client.post(path, json=body, headers=api.other_dealer.headers)).status_code == 403
    assert (await api.client.post(path, json=body, headers=api.owner.headers)).status_code == 409
    api.listing.sql("UPDATE questions SET status = 'approved' WHERE id = %s", (question,))
    answered = await api.client.post(path, json=body, headers=api.owner.headers)
    assert answered.status_code == 201, answered.text
    answer = answered.json()["data"]
    assert (answer["kind"], answer["question_id"], answer["vehicle_id"]) == ("answer", question, api.listing.vehicle_id)
    answer_path = f"/api/v1/answers/{answer['item_id']}"
    assert (await api.client.get(answer_path, headers=api.owner.headers)).status_code == 200
    assert (await api.client.get(answer_path, headers=api.buyer.headers)).status_code == 403


async def test_the_id_the_api_returns_opens_the_item(api: Api) -> None:
    """`id` reads `question-12`; the item paths take it as returned as well as the bare number."""
    question = (await ask(api, api.buyer, "Where was it serviced?")).json()["data"]
    api.listing.sql("UPDATE questions SET status = 'approved' WHERE id = %s", (question["item_id"],))
    for form in (question["id"], str(question["item_id"])):
        got = await api.client.get(f"/api/v1/questions/{form}", headers=api.buyer.headers)
        assert (got.status_code, got.json()["data"]["id"]) == (200, question["id"]), form
    answered = await api.client.post(f"/api/v1/questions/{question['id']}/answers", json={"text": "At the dealer."},
                                     headers=api.owner.headers)  # fmt: skip
    assert answered.status_code == 201, answered.text
    answer = answered.json()["data"]["id"]
    assert (await api.client.get(f"/api/v1/answers/{answer}", headers=api.owner.headers)).status_code == 200
    wrong_ids = [
        (f"/api/v1/questions/{answer}", "question_id"),
        ("/api/v1/answers/question-3", "answer_id"),
        ("/api/v1/questions/0", "question_id"),
        ("/api/v1/questions/twelve", "question_id"),
    ]
    for path, parameter in wrong_ids:
        wrong = await api.client.get(path, headers=api.buyer.headers)
        assert wrong.status_code == 422, path
        assert wrong.json()["error"]["problems"][0]["parameter"] == parameter, path


async def test_the_queue_is_for_moderators_and_admins(api: Api) -> None:
    for member in (api.buyer, api.owner):
        assert (await api.client.get("/api/v1/moderation/queue", headers=member.headers)).status_code == 403
    assert (await api.client.get("/api/v1/moderation/queue")).status_code == 401
    item = (await ask(api, api.buyer, "Is the price firm?")).json()["data"]["id"]
    for member in (api.buyer, api.owner):
        response = await api.client.post(f"/api/v1/moderation/items/{item}/approve", json={}, headers=member.headers)
        assert response.status_code == 403
    assert (await api.client.get("/api/v1/moderation/queue", headers=api.admin.headers)).status_code == 200


async def test_moderators_work_the_queue_oldest_first_and_every_decision_is_audited(api: Api) -> None:
    ids = [(await ask(api, api.buyer, f"Queue item {n}?")).json()["data"]["item_id"] for n in range(3)]
    api.listing.sql("UPDATE questions SET status = 'pending_review', flagged = true, review_reason = 'uncertain', "
                    "created_at = now() - (id * interval '1 minute') WHERE id = ANY(%s)", (ids,))  # fmt: skip
    api.listing.sql("UPDATE questions SET review_reason = 'moderation_failed' WHERE id = %s", (ids[0],))
    headers = api.moderator.headers
    queue = (await api.client.get("/api/v1/moderation/queue", params={"reason": "uncertain"}, headers=headers)).json()
    listed = [row["item_id"] for row in queue["data"]]
    assert listed == sorted(ids[1:], reverse=True)  # the larger id was made older
    assert queue["pagination"]["total"] == 2
    aged = await api.client.get("/api/v1/moderation/queue", params={"min_age_s": 100_000}, headers=headers)
    assert aged.json()["data"] == []
    bad = await api.client.get("/api/v1/moderation/queue", params={"reason": "nope"}, headers=headers)
    assert bad.status_code == 422
    assert "reason" in bad.text

    rejected = await api.client.post(f"/api/v1/moderation/items/question-{ids[1]}/reject",
                                     json={"note": "Off topic."}, headers=headers)  # fmt: skip
    assert (rejected.json()["data"]["status"], rejected.json()["message"]) == ("rejected", "rejected")
    redaction = {"text": "Is the price [removed]?", "note": "name"}
    redacted = await api.client.post(f"/api/v1/moderation/items/question-{ids[2]}/redact", json=redaction,
                                     headers=headers)  # fmt: skip
    assert (redacted.json()["data"]["status"], redacted.json()["data"]["text"]) == (
        "approved",
        "Is the price [removed]?",
    )
    no_text = await api.client.post(f"/api/v1/moderation/items/question-{ids[0]}/redact", json={}, headers=headers)
    assert no_text.status_code == 422
    assert (
        await api.client.post("/api/v1/moderation/items/post-1/approve", json={}, headers=headers)
    ).status_code == 422
    assert (await api.client.post(f"/api/v1/moderation/items/question-{ids[0]}/approve", json={},
                                  headers=api.admin.headers)).status_code == 200  # fmt: skip

    author_view = (await api.client.get(f"/api/v1/questions/{ids[1]}", headers=api.buyer.headers)).json()["data"]
    assert (author_view["status"], author_view["reason"]) == ("rejected", "Off topic.")
    detail = (await api.client.get(f"/api/v1/moderation/items/question-{ids[2]}", headers=headers)).json()["data"]
    [decision] = detail["audit"]
    assert (decision["actor_id"], decision["action"], decision["note"]) == (api.moderator.id, "redact", "name")
    assert decision["before"]["body"] == "Queue item 2?"
    assert decision["after"]["body"] == "Is the price [removed]?"
    remaining = (await api.client.get("/api/v1/moderation/queue", headers=headers)).json()["data"]
    assert ids[0] not in [row["item_id"] for row in remaining]
