"""Access tokens (short-lived JWTs) and refresh tokens (opaque, stored as hashes, rotated on use)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "auction-hub"


class InvalidToken(ValueError):
    """The token is malformed, forged or expired."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    role: str
    expires_at: datetime


def issue_access_token(user_id: int, role: str, secret: str, ttl: timedelta, now: datetime | None = None) -> str:
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "role": role,
        "iss": ISSUER,
        "iat": issued,
        "exp": issued + ttl,
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_access_token(token: str, secret: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["exp", "sub", "iat"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("the access token has expired; refresh it or sign in again") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("the access token is not valid; sign in again") from exc
    if claims.get("typ") != "access" or not str(claims["sub"]).isdigit():
        raise InvalidToken("the access token is not valid; sign in again")
    return AccessClaims(int(claims["sub"]), str(claims.get("role")), datetime.fromtimestamp(claims["exp"], UTC))


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
