"""Typo and prefix matching of the embedded engine, resolved against the words of make, model and trim.

tantivy's fuzzy and prefix queries walk the term dictionary with an automaton and read every posting list they
reach into a bitset of the whole segment before the search starts, once per query word, field and facet pass:
at 1M vehicles that was a quarter of a text search's time even when the filters left a few dozen documents
(README, Search front). These three fields hold few distinct words (~420 in the 1M bench index), so the words a
query word reaches are found here, once per index generation, and searched as plain terms, which a conjunction
with the filters advances lazily. The matching is the automaton's: one insertion, deletion, substitution or
swap of two neighbouring characters; a prefix is a plain `startswith`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

# Most distinct values of one field resolved here; past it the field keeps tantivy's automaton queries.
VOCABULARY_SIZE = 20_000
# Most words one alternative turns into (a one-letter prefix can reach hundreds): past it, the automaton's bitset
# is the cheaper way to match them all.
MAX_REACHED_WORDS = 64
# Resolved query words kept per vocabulary (one vocabulary lives for one index generation).
REACHED_CACHE_SIZE = 4096


def within_one_edit(word: str, other: str) -> bool:
    """Whether `other` is `word`, or one insertion, deletion, substitution or neighbour swap away from it."""
    if word == other:
        return True
    length, other_length = len(word), len(other)
    if length == other_length:
        differing = [position for position in range(length) if word[position] != other[position]]
        if len(differing) == 1:
            return True
        if len(differing) != 2:
            return False
        first, second = differing
        return second == first + 1 and word[first] == other[second] and word[second] == other[first]
    if abs(length - other_length) != 1:
        return False
    shorter, longer = (word, other) if length < other_length else (other, word)
    position = 0
    while position < len(shorter) and shorter[position] == longer[position]:
        position += 1
    return shorter[position:] == longer[position + 1 :]


class TextVocabulary:
    """The distinct words of one text field; `reached` lists those a query word matches inexactly."""

    def __init__(self, words: Iterable[str]) -> None:
        self._words = frozenset(words)
        self._sorted = sorted(self._words)
        self._by_length: dict[int, list[str]] = {}
        for word in self._sorted:
            self._by_length.setdefault(len(word), []).append(word)
        self._reached: dict[tuple[str, bool, bool], list[str] | None] = {}

    def __contains__(self, word: object) -> bool:
        return word in self._words

    def reached(self, token: str, *, typo: bool, prefix: bool) -> list[str] | None:
        """The words other than `token` one edit away (`typo`) or starting with it (`prefix`), sorted; None
        when there are more than `MAX_REACHED_WORDS`."""
        key = (token, typo, prefix)
        if key in self._reached:
            return self._reached[key]
        found: set[str] = set()
        if typo:
            for length in (len(token) - 1, len(token), len(token) + 1):
                found.update(word for word in self._by_length.get(length, ()) if within_one_edit(token, word))
        if prefix:
            start = bisect_left(self._sorted, token)
            for word in self._sorted[start:]:
                if not word.startswith(token):
                    break
                found.add(word)
        found.discard(token)
        words = sorted(found) if len(found) <= MAX_REACHED_WORDS else None
        if len(self._reached) >= REACHED_CACHE_SIZE:
            self._reached.clear()
        self._reached[key] = words
        return words
