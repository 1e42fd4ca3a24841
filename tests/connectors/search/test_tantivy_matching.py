"""How the embedded engine matches: typos and prefixes resolved against the vocabulary find exactly what
tantivy's automaton queries find; filters as term queries or a term set; integer keywords."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.search import tantivy_index
from connectors.search.port import FilterValue, SearchQuery
from connectors.search.tantivy_index import TantivyIndex
from connectors.search.tantivy_text import MAX_REACHED_WORDS, TextVocabulary, within_one_edit
from tests.connectors.search.conftest import make_vehicle

ALPHABET = "abcde"
words = st.text(ALPHABET, min_size=0, max_size=7)


def restricted_edit_distance(word: str, other: str) -> int:
    """Optimal string alignment distance (insertions, deletions, substitutions, neighbour swaps), by the table."""
    rows = [[0] * (len(other) + 1) for _ in range(len(word) + 1)]
    for i in range(len(word) + 1):
        rows[i][0] = i
    for j in range(len(other) + 1):
        rows[0][j] = j
    for i in range(1, len(word) + 1):
        for j in range(1, len(other) + 1):
            cost = 0 if word[i - 1] == other[j - 1] else 1
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and word[i - 1] == other[j - 2] and word[i - 2] == other[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(word)][len(other)]


@given(words, words)
def test_one_edit_is_the_restricted_edit_distance_of_one(word: str, other: str) -> None:
    assert within_one_edit(word, other) == (restricted_edit_distance(word, other) <= 1)


@given(st.lists(words, max_size=40), words, st.booleans(), st.booleans())
def test_reached_words_are_the_typos_and_extensions_of_the_word(
    vocabulary_words: list[str], token: str, typo: bool, prefix: bool
) -> None:
    expected = {
        word
        for word in vocabulary_words
        if word != token and ((typo and within_one_edit(token, word)) or (prefix and word.startswith(token)))
    }
    reached = TextVocabulary(vocabulary_words).reached(token, typo=typo, prefix=prefix)
    if len(expected) > MAX_REACHED_WORDS:
        assert reached is None
    else:
        assert reached == sorted(expected)


# -- against the index: the same documents as tantivy's fuzzy and prefix queries -------------------------


@pytest.fixture(scope="module")
def lexicon_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Vehicles whose models are 600 random words over five letters: many words are a typo of others, and a
    one-letter prefix reaches more than `MAX_REACHED_WORDS` of them."""
    chooser = random.Random(11)
    models = sorted({"".join(chooser.choices(ALPHABET, k=chooser.randint(3, 7))) for _ in range(600)})
    path = tmp_path_factory.mktemp("lexicon")

    async def build() -> None:
        index = TantivyIndex(path, writer=True)
        await index.upsert(
            [make_vehicle(n, make="Lexicon", model=model, trim="", description="") for n, model in enumerate(models)]
        )
        await index.close()

    asyncio.run(build())
    return path


async def matching_ids(path: Path, text: str, *, by_vocabulary: bool) -> set[str]:
    index = TantivyIndex(path, writer=False)
    saved = tantivy_index.VOCABULARY_SIZE
    if not by_vocabulary:
        tantivy_index.VOCABULARY_SIZE = 1  # every field has more distinct values: automaton queries throughout
    try:
        scored = await index.search(SearchQuery(text=text, prefix=True, limit=1000))
        unscored = await index.search(SearchQuery(text=text, prefix=True, limit=1000, sort=[("year", "asc")]))
        counted = await index.search(SearchQuery(text=text, prefix=True, facets=["model"], limit=0))
    finally:
        tantivy_index.VOCABULARY_SIZE = saved
        await index.close()
    found = {hit.id for hit in scored.hits}
    # Sorted hits and facet counts match the words in names_text: the same documents.
    assert {hit.id for hit in unscored.hits} == found
    assert sum(counted.facets.get("model", {}).values()) == counted.total == len(found)
    return found


@settings(max_examples=60, deadline=None)
@given(st.text(ALPHABET, min_size=1, max_size=7), words)
def test_typos_and_prefixes_find_the_documents_the_automaton_queries_find(
    lexicon_index: Path, last_word: str, first_word: str
) -> None:
    text = f"{first_word} {last_word}".strip()

    async def compare() -> None:
        by_vocabulary = await matching_ids(lexicon_index, text, by_vocabulary=True)
        assert by_vocabulary == await matching_ids(lexicon_index, text, by_vocabulary=False)

    asyncio.run(compare())


async def test_a_model_first_seen_after_earlier_searches_is_found_with_a_typo_after_the_next_commit(
    index_dir: Path,
) -> None:
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert([make_vehicle(1, make="Toyota", model="Camry")])
    await index.flush()
    assert [hit.id for hit in (await index.search(SearchQuery(text="toyta camry"))).hits] == ["1"]
    assert (await index.search(SearchQuery(text="suprq"))).total == 0  # caches this generation's words
    await index.upsert([make_vehicle(2, make="Toyota", model="Supra")])
    await index.flush()
    assert [hit.id for hit in (await index.search(SearchQuery(text="toyta suprq"))).hits] == ["2"]
    assert [hit.id for hit in (await index.search(SearchQuery(text="supr", prefix=True))).hits] == ["2"]
    await index.close()


async def test_a_filter_on_more_values_than_term_queries_take_matches_each_of_them(index_dir: Path) -> None:
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert([make_vehicle(n, dealer_id=n) for n in range(1, 121)])
    await index.flush()
    few = await index.search(SearchQuery(filters={"dealer_id": [3, 5, 999]}, facets=["dealer_id"]))
    assert few.total == 2
    assert few.facets["dealer_id"] == {str(n): 1 for n in range(1, 121)}
    many = list(range(2, 121, 2))  # 60 values: term queries; then 90 values: a term set
    assert (await index.search(SearchQuery(filters={"dealer_id": many}))).total == 60
    assert (await index.search(SearchQuery(filters={"dealer_id": list(range(31, 121))}))).total == 90
    await index.close()


async def test_a_dealer_filter_takes_ids_as_numbers_or_digits_and_other_values_match_nothing(index_dir: Path) -> None:
    index = TantivyIndex(index_dir, writer=True)
    await index.upsert([make_vehicle(1, dealer_id=7), make_vehicle(2, dealer_id=8)])
    await index.flush()
    matching: list[list[FilterValue]] = [[7], ["7"], [7.0], [7, "abc"]]
    for values in matching:
        assert [hit.id for hit in (await index.search(SearchQuery(filters={"dealer_id": values}))).hits] == ["1"]
    nothing: list[list[FilterValue]] = [["abc"], [7.5], [2**70], [True]]
    for values in nothing:
        assert (await index.search(SearchQuery(filters={"dealer_id": values}))).total == 0, values
    await index.close()
