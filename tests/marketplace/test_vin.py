from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.vin import (
    VIN_ALPHABET,
    is_valid_vin,
    make_vin,
    model_year_code,
    vin_check_digit,
    with_check_digit,
)

KNOWN_VALID = ("1HGCM82633A004352", "1M8GDM9AXKP042788", "11111111111111111")


@pytest.fixture(scope="module")
def sql(migrated_database_factory: Callable[[str], str]) -> Iterator[psycopg.Connection]:
    url = migrated_database_factory("vin")
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def sql_verdicts(conn: psycopg.Connection, vins: list[str]) -> list[bool]:
    rows = conn.execute(
        "SELECT vin_is_valid(v) FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n", (vins,)
    ).fetchall()
    return [bool(row[0]) for row in rows]


@pytest.mark.parametrize("vin", KNOWN_VALID)
def test_known_valid_vins(vin: str) -> None:
    assert is_valid_vin(vin)
    assert vin_check_digit(vin) == vin[8]


@pytest.mark.parametrize(
    "vin",
    [
        "1HGCM82643A004352",  # wrong check digit
        "1HGCM82633A00435",  # 16 characters
        "1HGCM82633A0043521",  # 18 characters
        "1HGCM82633A0O4352",  # O
        "IHGCM82633A004352",  # I
        "1HGCM82633A004Q52",  # Q
        "1hgcm82633a004352",  # lower case
        "1HGCM82633A004352\n",  # trailing newline: `$` would accept it, SQL does not
        "",
    ],
)
def test_invalid_vins(vin: str) -> None:
    assert not is_valid_vin(vin)


def test_check_digit_x() -> None:
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"
    assert with_check_digit("1M8GDM9A0KP042788") == "1M8GDM9AXKP042788"


def test_check_digit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="17 characters"):
        vin_check_digit("ABC")
    with pytest.raises(ValueError, match="'O'"):
        vin_check_digit("1HGCM82633A0O4352")


@pytest.mark.parametrize(
    ("year", "code"),
    [(1981, "B"), (1999, "X"), (2000, "Y"), (2001, "1"), (2009, "9"), (2010, "A"), (2026, "T"), (2030, "Y")],
)
def test_model_year_codes(year: int, code: str) -> None:
    assert model_year_code(year) == code


def test_model_year_out_of_range() -> None:
    with pytest.raises(ValueError, match="1980"):
        model_year_code(1980)


def test_make_vin_positions() -> None:
    rng = random.Random(3)
    new = make_vin(rng, "4T1", "B11HK", 2019, 4352)
    old = make_vin(rng, "4T1", "B11HK", 2005, 4352)
    assert is_valid_vin(new)
    assert is_valid_vin(old)
    assert (new[:3], new[9], new[11:]) == ("4T1", "K", "004352")
    # Position 7 tells the two 30-year cycles of year codes apart.
    assert new[6].isalpha()
    assert old[6].isdigit()
    assert old[9] == "5"


def test_make_vin_rejects_forbidden_letters() -> None:
    with pytest.raises(ValueError, match="never"):
        make_vin(random.Random(1), "1OQ", "B11HK", 2019, 1)


vin_chars = st.sampled_from(VIN_ALPHABET)
wmis = st.text(vin_chars, min_size=3, max_size=3)
vdses = st.text(vin_chars, min_size=5, max_size=5)
generated = st.builds(
    lambda seed, wmi, vds, year, serial: make_vin(random.Random(seed), wmi, vds, year, serial),
    st.integers(0, 2**32),
    wmis,
    vdses,
    st.integers(1981, 2030),
    st.integers(0, 999_999),
)
noise_chars = st.sampled_from(VIN_ALPHABET + "IOQ" + string.ascii_lowercase + " -*\u0663\u00c5")


@st.composite
def mutated(draw: st.DrawFn) -> str:
    vin = list(draw(generated))
    kind = draw(st.sampled_from(["replace", "swap", "drop", "insert", "case"]))
    i = draw(st.integers(0, 16))
    j = draw(st.integers(0, 16))
    if kind == "replace":
        vin[i] = draw(noise_chars)
    elif kind == "swap":
        vin[i], vin[j] = vin[j], vin[i]
    elif kind == "drop":
        del vin[i]
    elif kind == "insert":
        vin.insert(i, draw(noise_chars))
    else:
        vin[i] = vin[i].lower()
    return "".join(vin)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.one_of(generated, mutated(), st.text(noise_chars, min_size=15, max_size=18)), min_size=1, max_size=40)
)
def test_python_agrees_with_sql(sql: psycopg.Connection, vins: list[str]) -> None:
    assert sql_verdicts(sql, vins) == [is_valid_vin(vin) for vin in vins]


@settings(max_examples=100, deadline=None)
@given(generated)
def test_generated_vins_are_valid(vin: str) -> None:
    assert is_valid_vin(vin)


def test_known_vin_agrees_with_sql(sql: psycopg.Connection) -> None:
    assert sql_verdicts(sql, ["1HGCM82633A004352", "1HGCM82643A004352"]) == [True, False]
