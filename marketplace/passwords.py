"""Password hashing with bcrypt; the work runs in a thread so the event loop keeps serving."""

from __future__ import annotations

import asyncio

import bcrypt

# bcrypt reads at most 72 bytes of a password; longer ones are refused rather than silently truncated.
MAX_PASSWORD_BYTES = 72
MIN_PASSWORD_LENGTH = 10


def check_password_rules(password: str) -> str | None:
    """What is wrong with a new password, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"use at least {MIN_PASSWORD_LENGTH} characters"
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return f"use at most {MAX_PASSWORD_BYTES} bytes"
    if password.isalpha() or password.isdigit():
        return "mix letters with digits or symbols"
    return None


async def hash_password(password: str, rounds: int) -> str:
    def work() -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()

    return await asyncio.to_thread(work)


async def verify_password(password: str, password_hash: str) -> bool:
    def work() -> bool:
        try:
            return bcrypt.checkpw(password.encode()[:MAX_PASSWORD_BYTES], password_hash.encode())
        except ValueError:
            return False

    return await asyncio.to_thread(work)
