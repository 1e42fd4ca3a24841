"""Vehicle identification numbers (ISO 3779 / 49 CFR 565): check digit, validation and generation.

`is_valid_vin` is the Python twin of the SQL function `vin_is_valid` in migration 001; the tests hold
the two to the same answers.
"""

from __future__ import annotations

import random
import re
from typing import Final

VIN_LENGTH: Final = 17
CHECK_DIGIT_INDEX: Final = 8

WEIGHTS: Final = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
TRANSLITERATION: Final[dict[str, int]] = {
    **{str(digit): digit for digit in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
VIN_ALPHABET: Final = "".join(sorted(TRANSLITERATION))
LETTERS: Final = "".join(ch for ch in VIN_ALPHABET if ch.isalpha())

# `re.fullmatch`, because `$` would also accept a trailing newline that the SQL regex refuses.
_VIN_PATTERN: Final = re.compile(r"[A-HJ-NPR-Z0-9]{17}")

# Model-year codes (position 10) repeat every 30 years; 1980 and 2010 are both "A".
_YEAR_CODES: Final = "ABCDEFGHJKLMNPRSTVWXY123456789"
FIRST_MODEL_YEAR: Final = 1981
LAST_MODEL_YEAR: Final = 2030

# Plant codes (position 11) seen in the wild; any VIN character is legal there.
_PLANT_CODES: Final = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"


def vin_check_digit(vin: str) -> str:
    """The check digit (`0`-`9` or `X`) for a 17-character VIN; whatever is at position 9 is ignored."""
    if len(vin) != VIN_LENGTH:
        raise ValueError(f"a VIN has {VIN_LENGTH} characters, got {len(vin)}: {vin!r}")
    try:
        total = sum(TRANSLITERATION[ch] * weight for ch, weight in zip(vin, WEIGHTS, strict=True))
    except KeyError as exc:
        raise ValueError(f"{vin!r} contains {exc.args[0]!r}, which a VIN never does (no I, O, Q)") from None
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def is_valid_vin(vin: str) -> bool:
    """True for 17 upper-case VIN characters whose position 9 is the correct check digit."""
    if not _VIN_PATTERN.fullmatch(vin):
        return False
    return vin[CHECK_DIGIT_INDEX] == vin_check_digit(vin)


def model_year_code(model_year: int) -> str:
    """The position-10 code of a model year, 1981-2030."""
    if not FIRST_MODEL_YEAR <= model_year <= LAST_MODEL_YEAR:
        raise ValueError(f"model year {model_year} is outside {FIRST_MODEL_YEAR}-{LAST_MODEL_YEAR}")
    return _YEAR_CODES[(model_year - 1980) % 30]


def with_check_digit(vin: str) -> str:
    """`vin` with position 9 replaced by its correct check digit."""
    return vin[:CHECK_DIGIT_INDEX] + vin_check_digit(vin) + vin[CHECK_DIGIT_INDEX + 1 :]


def make_vin(rng: random.Random, wmi: str, vds: str, model_year: int, serial: int) -> str:
    """A valid VIN: manufacturer `wmi` (3), descriptor `vds` (5), check digit, year code, plant, serial (6).

    Position 7 follows the North American rule that tells the two 30-year cycles apart: a letter for
    model years 2010 and later, a digit before.
    """
    if len(wmi) != 3 or len(vds) != 5:
        raise ValueError(f"a WMI has 3 characters and a VDS 5, got {wmi!r} and {vds!r}")
    if not 0 <= serial < 1_000_000:
        raise ValueError(f"the serial is 6 digits, got {serial}")
    if model_year >= 2010 and not vds[3].isalpha():
        vds = vds[:3] + LETTERS[int(vds[3]) % len(LETTERS)] + vds[4]
    elif model_year < 2010 and not vds[3].isdigit():
        vds = vds[:3] + str(TRANSLITERATION[vds[3]]) + vds[4]
    draft = f"{wmi}{vds}0{model_year_code(model_year)}{rng.choice(_PLANT_CODES)}{serial:06d}"
    vin = with_check_digit(draft)
    if not _VIN_PATTERN.fullmatch(vin):
        raise ValueError(f"{wmi!r} or {vds!r} contains a character that a VIN never does (I, O, Q, lower case)")
    return vin
