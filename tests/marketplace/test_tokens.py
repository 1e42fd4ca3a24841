"""The cache of verified access tokens: it skips the signature check, never the key or the expiry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from marketplace import tokens
from marketplace.tokens import AccessClaims, InvalidToken, issue_access_token, read_access_token

SECRET = "s" * 40
OTHER_SECRET = "o" * 40


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    tokens.verified_tokens.clear()
    yield
    tokens.verified_tokens.clear()


def test_a_verified_token_is_read_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    token = issue_access_token(7, "dealer", SECRET, timedelta(minutes=15))
    first = read_access_token(token, SECRET)
    assert (first.user_id, first.role) == (7, "dealer")

    def no_decoding(*_: object, **__: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(jwt, "decode", no_decoding)
    assert read_access_token(token, SECRET) is first


def test_a_cached_token_does_not_pass_under_another_key() -> None:
    token = issue_access_token(7, "dealer", SECRET, timedelta(minutes=15))
    read_access_token(token, SECRET)
    with pytest.raises(InvalidToken, match="not valid"):
        read_access_token(token, OTHER_SECRET)


def test_a_cached_token_is_refused_once_it_has_expired() -> None:
    issued = datetime.now(UTC) - timedelta(hours=1)
    token = issue_access_token(7, "dealer", SECRET, timedelta(minutes=15), now=issued)
    # As if it had been verified while it was still valid.
    tokens.verified_tokens.put(token, SECRET, AccessClaims(7, "dealer", issued + timedelta(minutes=15)))
    with pytest.raises(InvalidToken, match="expired"):
        read_access_token(token, SECRET)
    assert tokens.verified_tokens.get(token, SECRET) is None


def test_the_cache_keeps_the_most_recently_used_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens.verified_tokens, "size", 2)
    first, second, third = (issue_access_token(n, "buyer", SECRET, timedelta(minutes=15)) for n in (1, 2, 3))
    read_access_token(first, SECRET)
    read_access_token(second, SECRET)
    read_access_token(first, SECRET)  # first is now the most recent
    read_access_token(third, SECRET)  # evicts second
    assert tokens.verified_tokens.get(first, SECRET) is not None
    assert tokens.verified_tokens.get(second, SECRET) is None
    assert tokens.verified_tokens.get(third, SECRET) is not None


def test_invalid_tokens_are_not_cached() -> None:
    with pytest.raises(InvalidToken):
        read_access_token("not.a.token", SECRET)
    assert tokens.verified_tokens.get("not.a.token", SECRET) is None
