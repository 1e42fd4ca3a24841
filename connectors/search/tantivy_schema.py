"""The embedded engine's schema: which tantivy fields a vehicle document is written to, and how.

Each document is stored whole as the JSON `VehicleDocument` (`doc`, so `get` returns exactly what was
written) beside indexed copies of the fields search needs. Those copies are written for visible documents only
(searchable: not deleted, searchable status), so any text, filter, range or radius clause matches visible
documents alone, and only a search without any (or a facet pass without its one filter) reads `visible`; on
1M vehicles that clause was most of a browse's matching time:

- `<field>_text` / `description`: tokenized text (ASCII-folded, lowercased; document ids only, for the term,
  fuzzy and prefix queries of `search`, all scored as constants), and `names_text`, the words of make, model
  and trim together for the unscored matching (facet passes, sorted hits);
- keyword fields (`fields.KEYWORD_FIELDS`): raw terms, for filters;
- numeric fields (`fields.NUMERIC_FIELDS`): indexed and fast, for ranges;
- `geo_point` and `auction_ends_at`.

Every document has:

- `id`: raw term, stored and fast (term lookups), and `id_key`, its rank (ties of every sort);
- `visible` and `deleted`, both indexed and fast;
- `vin_key` (the VIN trimmed and upper case) and `dealer_key`: raw fast terms for `live_ids_by`, which finds
  hidden documents too;
- the columns facets and sorts read (`FACET_COLUMNS`, `STEP_COLUMNS`, the sort keys), fast only in effect, with
  a no-value marker where a document is hidden or lacks the value: no clause ever matches a hidden document, and
  a column every document has is read several times faster than one some lack.

The directory is versioned (`<index_path>/<index_name>_v<SCHEMA_VERSION>`): a schema change starts an empty
index that the indexer fills by replaying its topics, never a mixed one.
"""

from __future__ import annotations

import base64
from bisect import bisect_right
from pathlib import Path
from typing import Any

import orjson
import tantivy

from connectors.search.fields import (
    AUCTION_ENDS_AT,
    FLOAT_FIELDS,
    FUZZY_TEXT_SOURCES,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    SORT_FIELDS,
    STANDARD_RANGE_EDGES,
    VIN_KEY,
    compact_text,
    document_keywords,
    document_lookup_keys,
    epoch_seconds,
    keyword_value,
)
from connectors.search.tantivy_sorting import document_sort_keys, id_rank, sort_key_field
from schemas.vehicle import VehicleDocument

# 3: vin_key; 4: sort keys fast-only; 5: text fields without frequencies and positions; 6: text of visible documents
# only, and names_text; 7: facet, step and sort columns for every document, keyword fields index-only; 8: step
# columns unsigned, the dealer facet column text
SCHEMA_VERSION = 8
TEXT_TOKENIZER = "vehicle_text"
# Indexed name of each full-text source (the keyword field keeps the plain name).
TEXT_FIELDS: dict[str, str] = {
    "make": "make_text",
    "model": "model_text",
    "trim": "trim_text",
    "description": "description",
}
# The words of make, model and trim in one field: what matching a word costs in the unscored conjunctions (facet
# passes, sorted hits), one posting list instead of three.
NAMES_TEXT = "names_text"
GEO_POINT = "geo_point"
ID_KEY = "id_key"
# `dealer_id` for lookups: the keyword field, like every searched field, is written for visible documents only.
DEALER_KEY = "dealer_key"
# The lookup fields (`fields.LOOKUP_FIELDS`) this engine reads from another column than the searched one.
LOOKUP_COLUMNS: dict[str, str] = {"dealer_id": DEALER_KEY}
# Facet columns: one fast text column per keyword field (and the condition grade) with a value for every
# document, `NO_VALUE` where the document is hidden or lacks one. tantivy reads a column that some documents lack
# through an extra index, and a terms aggregation over such a column cost ~3.4x one over a column every document
# has (measured: 10 facets of 100,000 documents, 4.9 against 1.4 ms). The keyword fields themselves stay written
# for visible documents only (filters; see above). Dealer ids too are counted as text: a terms aggregation over
# a signed integer column cost ~2x one over the same values as text (measured, 1M documents: 3.8 against 1.8 ms
# for the dealer facet).
NO_VALUE = ""
# Keywords whose field holds integers (filters match them as numbers).
INTEGER_KEYWORDS: tuple[str, ...] = ("dealer_id",)
INTEGER_COLUMNS: tuple[str, ...] = INTEGER_FIELDS + INTEGER_KEYWORDS
FACET_COLUMNS: dict[str, str] = {name: f"{name}_facet" for name in (*KEYWORD_FIELDS, "condition_grade")}
# Which standard bucket (`fields.STANDARD_RANGE_EDGES`) a value falls in, for every document (one past the last
# bucket where the document is hidden or lacks the value): a range facet with those edges is a terms aggregation
# over this unsigned column, ~4x cheaper a document than tantivy's range aggregation among a search's facets
# (measured; a signed column cost ~1.7x an unsigned one); other edges keep the range aggregation.
STEP_COLUMNS: dict[str, str] = {name: f"{name}_step" for name in STANDARD_RANGE_EDGES}


def build_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, fast=True, tokenizer_name="raw", index_option="basic")
    builder.add_bytes_field("doc", stored=True, indexed=False)
    for text_field in [*TEXT_FIELDS.values(), NAMES_TEXT]:
        # Document ids only: every text query is term-level (exact, fuzzy, prefix) under a constant score, so
        # frequencies and positions were written, merged and never read.
        builder.add_text_field(text_field, tokenizer_name=TEXT_TOKENIZER, index_option="basic")
    for name in KEYWORD_FIELDS:
        if name not in INTEGER_KEYWORDS:
            builder.add_text_field(name, tokenizer_name="raw", index_option="basic")
    for name in INTEGER_FIELDS:
        builder.add_integer_field(name, indexed=True, fast=True)
    for name in INTEGER_KEYWORDS:
        builder.add_integer_field(name, indexed=True)
    for column in FACET_COLUMNS.values():
        # tantivy-py indexes every text field; this index is never searched
        builder.add_text_field(column, fast=True, tokenizer_name="raw", index_option="basic")
    for step_column in STEP_COLUMNS.values():
        builder.add_unsigned_field(step_column, indexed=False, fast=True)
    for name in FLOAT_FIELDS:
        builder.add_float_field(name, indexed=True, fast=True)
    builder.add_boolean_field("visible", indexed=True, fast=True)
    builder.add_boolean_field("deleted", indexed=True, fast=True)
    builder.add_text_field(VIN_KEY, fast=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field(DEALER_KEY, fast=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field(GEO_POINT, fast=True, tokenizer_name="raw", index_option="basic")
    builder.add_integer_field(AUCTION_ENDS_AT, indexed=True, fast=True)
    builder.add_unsigned_field(ID_KEY, indexed=True, fast=True)
    for name in SORT_FIELDS:
        for order in ("asc", "desc"):
            # Fast only: sorting reads the column, and a cursor's range query runs on the column too, so an
            # inverted index of these twelve keys was only more work for every commit and merge.
            builder.add_unsigned_field(sort_key_field(name, order), indexed=False, fast=True)
    return builder.build()


VISIBLE = tantivy.Query.term_query(build_schema(), "visible", True)


def text_analyzer() -> tantivy.TextAnalyzer:
    """Splits on non-alphanumerics, drops tokens over 40 bytes, lowercases, folds accents (Citroën = citroen)."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


def index_directory(base: Path, index_name: str) -> Path:
    return base / f"{index_name}_v{SCHEMA_VERSION}"


def index_json(document: VehicleDocument, stored: bytes) -> str:
    """The `IndexWriter.add_json` payload of one document (`stored` is its JSON, kept whole)."""
    fields: dict[str, Any] = {
        "id": document.id,
        "doc": base64.b64encode(stored).decode("ascii"),
        "visible": document.searchable,
        "deleted": document.deleted,
    }
    fields.update(lookup_keys(document))
    fields[ID_KEY] = id_rank(document.id)
    if document.searchable:
        fields.update(searched_fields(document))
        fields.update(facet_values(document))
    else:
        fields.update(NO_VALUES)
    fields.update(document_sort_keys(document))
    return orjson.dumps(fields).decode("utf-8")


def searched_fields(document: VehicleDocument) -> dict[str, Any]:
    """The fields searches match, count and sort on: written for visible documents only."""
    fields: dict[str, Any] = document_keywords(document)
    if document.dealer_id is not None:
        fields["dealer_id"] = document.dealer_id
    fields.update(text_fields(document))
    for name in INTEGER_FIELDS + FLOAT_FIELDS:
        value = getattr(document, name)
        if value is not None:
            fields[name] = value
    if document.lat is not None and document.lon is not None:
        fields[GEO_POINT] = geo_point_key(document.lat, document.lon)
    ends_at = epoch_seconds(document.auction_ends_at)
    if ends_at is not None:
        fields[AUCTION_ENDS_AT] = ends_at
    return fields


# What each facet and step column holds for a document that is hidden or lacks the value.
NO_VALUES: dict[str, Any] = {
    **dict.fromkeys(FACET_COLUMNS.values(), NO_VALUE),
    **{column: len(STANDARD_RANGE_EDGES[name]) + 1 for name, column in STEP_COLUMNS.items()},
}


def facet_values(document: VehicleDocument) -> dict[str, Any]:
    """The facet and step columns of a visible document (every document has these columns; see above)."""
    values = dict(NO_VALUES)
    for name, column in FACET_COLUMNS.items():
        value = getattr(document, name)
        if value is not None:
            values[column] = value if type(value) is str else keyword_value(value)
    for name, column in STEP_COLUMNS.items():
        value = getattr(document, name)
        if value is not None:
            values[column] = bisect_right(STANDARD_RANGE_EDGES[name], value)
    return values


def text_fields(document: VehicleDocument) -> dict[str, str]:
    fields: dict[str, str] = {}
    names = []
    for source, text_field in TEXT_FIELDS.items():
        text = getattr(document, source)
        if text:
            fields[text_field] = indexed_text(source, text)
            if source in FUZZY_TEXT_SOURCES:
                names.append(fields[text_field])
    if names:
        fields[NAMES_TEXT] = " ".join(names)
    return fields


def lookup_keys(document: VehicleDocument) -> dict[str, str]:
    """The fields `live_ids_by` matches, written for every document, visible or not."""
    keys = document_lookup_keys(document)
    if document.dealer_id is not None:
        keys[DEALER_KEY] = keyword_value(document.dealer_id) or ""
    return keys


def indexed_text(source: str, text: str) -> str:
    """What the text field of `source` indexes: the text, and for make/model/trim its compact form too."""
    compact = compact_text(text) if source in FUZZY_TEXT_SOURCES else ""
    return f"{text} {compact}" if compact and not text.isalnum() else text


def geo_point_key(lat: float, lon: float) -> str:
    """A location as an exact keyword (`repr` round-trips floats), so the points near a place can be counted."""
    return f"{lat!r},{lon!r}"


def parse_geo_point(key: str) -> tuple[float, float]:
    lat, lon = key.split(",")
    return float(lat), float(lon)
