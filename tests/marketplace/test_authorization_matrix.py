"""The authorization matrix of /users and /dealers: role x endpoint x own/other resource -> status.

One database and one set of accounts serve the whole module; endpoints that would change that world for
later cases (deleting an account, registering a store) act with fresh accounts of the same role.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from tests.marketplace.api_client import PASSWORD, Member, marketplace_client, sign_up
from tests.marketplace.dealer_rows import insert_auction, insert_bid, insert_lot, insert_vehicle, register_store

ROLES = ("anonymous", "buyer", "other_buyer", "dealer_owner", "other_dealer", "moderator", "admin")

# target: `own` = the actor's own account or store; `other` = someone else's: the buyer's account (the other
# buyer's, when the buyer acts) or the dealer owner's store (the other dealer's, when the owner acts); `-` = the
# endpoint has no target. A cell of `-` is a combination that does not exist (anonymous has no account; only
# dealers have stores). `200+` is 200 with the store's private fields (owner, licence, contact email).
MATRIX = """
endpoint          target  anonymous buyer other_buyer dealer_owner other_dealer moderator admin
users.list        -       401       403   403         403          403          403       200
users.get         own     -         200   200         200          200          200       200
users.get         other   401       403   403         403          403          403       200
profile.get       own     -         200   200         200          200          200       200
profile.get       other   401       403   403         403          403          403       200
profile.patch     own     -         200   200         200          200          200       200
profile.patch     other   401       403   403         403          403          403       200
users.delete      own     -         200   200         200          200          200       200
users.delete      other   401       403   403         403          403          403       200
dealers.create    own     401       201   201         409          409          403       403
dealers.list      -       401       200   200         200          200          200       200
dealers.get       own     -         -     -           200+         200+         -         -
dealers.get       other   401       200   200         200          200          200       200+
dealers.patch     own     -         -     -           200          200          -         -
dealers.patch     other   401       403   403         403          403          403       200
dealers.status    own     -         -     -           403          403          -         -
dealers.status    other   401       403   403         403          403          403       200
dealers.stats     own     -         -     -           200          200          -         -
dealers.stats     other   401       403   403         403          403          403       200
dealers.cars      own     -         -     -           200          200          -         -
dealers.cars      other   401       200   200         200          200          200       200
dealers.auctions  own     -         -     -           200          200          -         -
dealers.auctions  other   401       200   200         200          200          200       200
"""


def _cases() -> list[pytest.ParameterSet]:
    lines = MATRIX.strip().splitlines()
    header = lines[0].split()
    assert tuple(header[2:]) == ROLES
    cases = []
    for line in lines[1:]:
        endpoint, target, *cells = line.split()
        for role, cell in zip(ROLES, cells, strict=True):
            if cell != "-":
                cases.append(pytest.param(endpoint, role, target, cell, id=f"{endpoint}-{target}-{role}"))
    return cases


@dataclass
class World:
    client: httpx.AsyncClient
    database_url: str
    members: dict[str, Member]
    stores: dict[str, int]
    fresh: Callable[[str], str]

    def other_user(self, role: str) -> Member:
        return self.members["other_buyer" if role == "buyer" else "buyer"]

    def other_store(self, role: str) -> int:
        return self.stores["other_dealer" if role == "dealer_owner" else "dealer_owner"]


# The requests of the endpoints that leave the world as it was (PATCHes write the same values every time).
ROUTES: dict[str, tuple[str, str, dict[str, str] | None]] = {
    "users.list": ("GET", "/api/v1/users", None),
    "users.get": ("GET", "/api/v1/users/{user}", None),
    "profile.get": ("GET", "/api/v1/users/{user}/profile", None),
    "profile.patch": ("PATCH", "/api/v1/users/{user}/profile", {"phone": "+1 555 0100"}),
    "dealers.list": ("GET", "/api/v1/dealers", None),
    "dealers.get": ("GET", "/api/v1/dealers/{dealer}", None),
    "dealers.patch": ("PATCH", "/api/v1/dealers/{dealer}", {"phone": "+1 555 0199"}),
    "dealers.status": ("PATCH", "/api/v1/dealers/{dealer}/status", {"status": "verified"}),
    "dealers.stats": ("GET", "/api/v1/dealers/{dealer}/statistics", None),
    "dealers.cars": ("GET", "/api/v1/dealers/{dealer}/cars", None),
    "dealers.auctions": ("GET", "/api/v1/dealers/{dealer}/auctions", None),
}
SELF_SERVICE = {"buyer": "buyer", "other_buyer": "buyer", "dealer_owner": "dealer", "other_dealer": "dealer"}


@pytest.fixture(scope="module")
async def world(
    migrated_database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    database_url = migrated_database_factory("matrix")
    async with marketplace_client(database_url, tmp_path_factory.mktemp("matrix") / "index") as client:
        members = {
            role: await sign_up(client, f"{role}@example.com", SELF_SERVICE.get(role, role), database_url)
            for role in ROLES[1:]
        }
        stores = {role: await register_store(client, members[role]) for role in ("dealer_owner", "other_dealer")}
        counter = itertools.count()
        yield World(client, database_url, members, stores, lambda role: f"{role}-{next(counter)}@example.com")


async def _fresh_member(world: World, role: str) -> Member:
    email = world.fresh(role)
    return await sign_up(world.client, email, SELF_SERVICE.get(role, role), world.database_url)


async def _request(world: World, endpoint: str, role: str, target: str) -> httpx.Response:
    client = world.client
    actor = world.members.get(role)
    headers = actor.headers if actor else {}
    if endpoint == "users.delete":
        # Deleting changes the world: a fresh actor of this role deletes itself or a fresh victim.
        actor = None if role == "anonymous" else await _fresh_member(world, role)
        victim = actor if target == "own" and actor else await _fresh_member(world, "buyer")
        return await client.delete(f"/api/v1/users/{victim.id}", headers=actor.headers if actor else {})
    if endpoint == "dealers.create":
        # Buyers become dealers by registering: fresh ones, so the accounts of the other cases stay buyers.
        if role in ("buyer", "other_buyer"):
            headers = (await _fresh_member(world, role)).headers
        store = {"name": "Matrix Motors", "address": "1 Elm St", "zip": "79605", "contact_email": "m@example.com",
                 "licence_number": f"MX-{world.fresh('licence').split('@')[0]}"}  # fmt: skip
        return await client.post("/api/v1/dealers", json=store, headers=headers)

    user_id = (actor.id if actor else 0) if target == "own" else world.other_user(role).id
    dealer_id = world.stores.get(role, 0) if target == "own" else world.other_store(role)
    method, path, body = ROUTES[endpoint]
    url = path.format(user=user_id, dealer=dealer_id)
    return await client.request(method, url, json=body, headers=headers)


@pytest.mark.parametrize(("endpoint", "role", "target", "expected"), _cases())
async def test_authorization_matrix(world: World, endpoint: str, role: str, target: str, expected: str) -> None:
    response = await _request(world, endpoint, role, target)
    assert response.status_code == int(expected.rstrip("+")), response.text
    body = response.json()
    if response.status_code >= 400:
        assert body["status"] == "error"
        assert body["error"]["message"]
        return
    assert body["status"] == "success"
    if endpoint == "dealers.get":
        private = {"owner_id", "licence_number", "contact_email"} & body["data"].keys()
        assert bool(private) == expected.endswith("+"), body["data"]
    if endpoint in ("users.get", "profile.get", "profile.patch") and target == "other":
        assert body["data"]["id"] == world.other_user(role).id


async def test_a_user_never_sees_another_users_data_in_any_response(world: World) -> None:
    """Whatever a non-admin reads, no other account's email appears in it."""
    buyer = world.members["buyer"]
    others = {m.email for role, m in world.members.items() if role != "buyer"}
    paths = ["/api/v1/users/me", "/api/v1/dealers", *(f"/api/v1/dealers/{d}" for d in world.stores.values())]
    for path in paths:
        text = (await world.client.get(path, headers=buyer.headers)).text
        assert not [email for email in others if email in text], path


async def test_unknown_resources_are_404_for_admins(world: World) -> None:
    admin = world.members["admin"]
    for path in ("/api/v1/users/987654", "/api/v1/dealers/987654", "/api/v1/dealers/987654/statistics"):
        assert (await world.client.get(path, headers=admin.headers)).status_code == 404, path


async def test_deleting_an_account_keeps_its_bids_and_erases_personal_data(world: World) -> None:
    client, db = world.client, world.database_url
    bidder = await sign_up(client, "leaving@example.com")
    await client.patch(f"/api/v1/users/{bidder.id}/profile", json={"phone": "+1 555 0123"}, headers=bidder.headers)
    dealer_id = world.stores["dealer_owner"]
    car = insert_vehicle(db, dealer_id, "15000.00")
    lot = insert_lot(db, insert_auction(db, dealer_id, "live", days_ago=0), car, 1, "open", "15500.00")
    bid = insert_bid(db, lot, bidder.id, "15500.00")

    deleted = await client.delete(f"/api/v1/users/{bidder.id}", headers=bidder.headers)
    assert deleted.status_code == 200

    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT user_id, amount FROM bids WHERE id = %s", (bid,)).fetchone() == (bidder.id, 15500)
        email, name, phone, password_hash, deleted_at = (
            conn.execute(
                "SELECT email, full_name, phone, password_hash, deleted_at FROM users WHERE id = %s", (bidder.id,)
            ).fetchone()
            or (None,) * 5
        )
    assert "leaving" not in email
    assert (name, phone, password_hash) == ("Deleted user", None, "!")
    assert deleted_at is not None
    login = await client.post("/api/v1/auth/login", data={"username": bidder.email, "password": PASSWORD})
    assert login.status_code == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": bidder.refresh_token})
    assert refresh.status_code == 401
    seen_by_admin = await client.get(f"/api/v1/users/{bidder.id}", headers=world.members["admin"].headers)
    assert seen_by_admin.json()["data"]["deleted"] is True
    assert seen_by_admin.json()["data"]["email"] != bidder.email
    again = await client.delete(f"/api/v1/users/{bidder.id}", headers=world.members["admin"].headers)
    assert again.status_code == 404
