"""Operator task: create an admin account, or promote an existing one (admins cannot sign up)."""

from __future__ import annotations

import bcrypt
import psycopg

from marketplace.passwords import check_password_rules


class AdminError(ValueError):
    """The account cannot be created; the message says why."""


def create_admin(database_url: str, email: str, password: str, full_name: str, rounds: int = 12) -> tuple[int, bool]:
    """(user id, created): a new admin, or an existing account of that email promoted to admin."""
    problem = check_password_rules(password)
    if problem:
        raise AdminError(f"password: {problem}")
    password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "UPDATE users SET role = 'admin', password_hash = %s, updated_at = now() "
            "WHERE lower(email) = lower(%s) AND deleted_at IS NULL RETURNING id",
            (password_hash, email),
        ).fetchone()
        if row is not None:
            return int(row[0]), False
        row = conn.execute(
            "INSERT INTO users (email, password_hash, full_name, role) VALUES (%s, %s, %s, 'admin') RETURNING id",
            (email.strip().lower(), password_hash, full_name),
        ).fetchone()
    if row is None:
        raise AdminError("the account could not be created")
    return int(row[0]), True
