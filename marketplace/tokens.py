"""Access tokens (short-lived JWTs) and refresh tokens (opaque, stored as hashes, rotated on use)."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jwt

ALGORITHM = "HS256"
ISSUER = "auction-hub"
# Access tokens verified lately (a client sends the same one with every request until it expires).
VERIFIED_TOKENS_CACHED: Final = 4096


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


class _VerifiedTokens:
    """A bounded LRU of verified access tokens -> claims, each kept no longer than the token lives.

    An access token is stateless (nothing revokes it before `exp`), so a token that verified once under a key
    verifies the same way until it expires: a hit skips the HMAC and the claim checks, not the expiry.
    Keyed by (token, secret) so a token never passes under another key.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._claims: OrderedDict[tuple[str, str], tuple[AccessClaims, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, secret: str) -> AccessClaims | None:
        key = (token, secret)
        with self._lock:
            hit = self._claims.get(key)
            if hit is None:
                return None
            if time.time() >= hit[1]:  # expired: the full check says so
                del self._claims[key]
                return None
            self._claims.move_to_end(key)
            return hit[0]

    def put(self, token: str, secret: str, claims: AccessClaims) -> None:
        with self._lock:
            self._claims[(token, secret)] = (claims, claims.expires_at.timestamp())
            if len(self._claims) > self.size:
                self._claims.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._claims.clear()


verified_tokens = _VerifiedTokens(VERIFIED_TOKENS_CACHED)


def read_access_token(token: str, secret: str) -> AccessClaims:
    cached = verified_tokens.get(token, secret)
    if cached is not None:
        return cached
    claims = _verify_access_token(token, secret)
    verified_tokens.put(token, secret, claims)
    return claims


def _verify_access_token(token: str, secret: str) -> AccessClaims:
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
