"""Financial data caught at submission, before anything is stored: card (Luhn), SSN, IBAN (mod 97) and
keyword-led bank account numbers are replaced by placeholders, so PostgreSQL, the WAL and the change topics
never hold them in clear. Pure regular expressions and checksums: the API process loads no model.
"""

from __future__ import annotations

import re
from typing import Final

from moderation.model import PiiFinding, redact

_CARD: Final = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])")
_SSN: Final = re.compile(r"(?<![\d\-])(?!000|666|9\d\d)\d{3}([\- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d\-])")
_IBAN: Final = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_BANK: Final = re.compile(
    r"\b(?:account|acct|a/c|routing|aba|checking|savings|passport)\b(?:\s*(?:number|num|no\.?|#|is|:))*"
    r"\s*\d[\d \-]{5,20}\d\b",
    re.IGNORECASE,
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def financial_findings(text: str) -> list[PiiFinding]:
    found: list[PiiFinding] = []
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits) and len(set(digits)) > 1:
            found.append(PiiFinding("CREDIT_CARD", match.start(), match.end(), 1.0))
    found += [PiiFinding("US_SSN", m.start(), m.end(), 0.9) for m in _SSN.finditer(text)]
    found += [PiiFinding("IBAN_CODE", m.start(), m.end(), 1.0) for m in _IBAN.finditer(text) if iban_valid(m.group())]
    for match in _BANK.finditer(text):
        entity = "US_PASSPORT" if match.group().lower().startswith("passport") else "US_BANK_NUMBER"
        found.append(PiiFinding(entity, match.start(), match.end(), 0.8))
    kept: list[PiiFinding] = []
    for finding in sorted(found, key=lambda f: (f.start, -(f.end - f.start))):
        if not kept or finding.start >= kept[-1].end:
            kept.append(finding)
    return kept


def redact_financial(text: str) -> tuple[str, tuple[str, ...]]:
    """The text to store and the entity types that were removed from it."""
    findings = financial_findings(text)
    if not findings:
        return text, ()
    return redact(text, findings), tuple(sorted({f.entity for f in findings}))
