"""`auction-hub create-admin`: operators create or promote admins (nobody signs up as one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from marketplace.admins import AdminError, create_admin
from tests.marketplace.api_client import PASSWORD, marketplace_client, sign_in, sign_up

ROOT = Path(__file__).parents[2]


async def test_the_command_creates_an_admin_who_can_list_users(migrated_database: str, tmp_path: Path) -> None:
    env = {**os.environ, "AUCTION_HUB_DATABASE_URL": migrated_database, "AUCTION_HUB_ADMIN_PASSWORD": PASSWORD}
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "create-admin", "root@example.com"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    async with marketplace_client(migrated_database, tmp_path / "index") as client:
        admin = await sign_in(client, "root@example.com", 0, "admin")
        response = await client.get("/api/v1/users", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["pagination"]["total"] == 1


async def test_an_existing_account_is_promoted(migrated_database: str, tmp_path: Path) -> None:
    async with marketplace_client(migrated_database, tmp_path / "index") as client:
        member = await sign_up(client, "pat@example.com")
        user_id, created = create_admin(migrated_database, "PAT@example.com", PASSWORD, "Pat", rounds=4)
        assert (user_id, created) == (member.id, False)
        refused = await client.get("/api/v1/users", headers=member.headers)  # the old token still says buyer
        assert refused.status_code == 403
        admin = await sign_in(client, "pat@example.com", member.id, "admin")
        assert (await client.get("/api/v1/users", headers=admin.headers)).status_code == 200


def test_a_weak_password_is_refused(migrated_database: str) -> None:
    with pytest.raises(AdminError, match="password"):
        create_admin(migrated_database, "x@example.com", "short", "X", rounds=4)
