"""The offline detectors on car Q&A: PII kinds and dodges, hard negatives, profanity and its allowlist."""

from __future__ import annotations

import logging

import pytest

from moderation.model import redact
from moderation.pii import PiiDetector
from moderation.prescreen import financial_findings, iban_valid, luhn_valid, redact_financial
from moderation.profanity import ProfanityDetector, normalise


@pytest.fixture(scope="module")
def pii() -> PiiDetector:
    return PiiDetector()


@pytest.fixture(scope="module")
def profanity() -> ProfanityDetector:
    return ProfanityDetector()


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("Call me at (415) 867-5309 after six", "PHONE_NUMBER"),
        ("my cell 415.867.5309", "PHONE_NUMBER"),
        ("+1 604 555 0143 whatsapp", "PHONE_NUMBER"),
        ("text five five five 0187 for the price", "PHONE_NUMBER"),
        ("reach me 4one5 8six7 5three0nine", "PHONE_NUMBER"),
        ("digits 4 1 5 8 6 7 5 3 0 9", "PHONE_NUMBER"),
        ("email john at gmail dot com", "EMAIL_ADDRESS"),
        ("john [at] gmail [dot] com", "EMAIL_ADDRESS"),
        ("write jsmith (at) yahoo", "EMAIL_ADDRESS"),
        ("or john.smith@outlook.com", "EMAIL_ADDRESS"),
        ("DM me on insta @carguy_99", "SOCIAL_HANDLE"),
        ("snap: fastcars22", "SOCIAL_HANDLE"),
        ("pics at carsdirect.com/deal/123", "URL"),
        ("pay with 4111 1111 1111 1111 exp 04/27", "CREDIT_CARD"),
        ("my SSN is 536-22-8714", "US_SSN"),
        ("IBAN DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
        ("wire it to account number 000123456789", "US_BANK_NUMBER"),
    ],
)
def test_pii_is_found(pii: PiiDetector, text: str, entity: str) -> None:
    assert entity in {finding.entity for finding in pii.find(text)}


@pytest.mark.parametrize(
    "text",
    [
        "VIN 1HGCM82633A004352, is the title clean?",
        "Needs part 04465-33471 and code P0420 cleared",
        "45,000 miles, asking $12,500 obo, stock #A12345, lot 42",
        "plate 7ABC123 expires next year",
        "Is it a 2018 with 45 000 miles? 2 owners, 4 new tires, 3 keys",
        "The CR-V.It runs great with the 2.5L",
        "find me on facebook marketplace",
        "Ref 90915-YZZD1 oil filter, 5W-30, 0W-20 capable",
    ],
)
def test_car_data_is_never_pii(pii: PiiDetector, text: str) -> None:
    assert pii.find(text) == []


def test_redaction_puts_placeholders_where_the_pii_was(pii: PiiDetector) -> None:
    text = "Call 415-867-5309 or mail john@gmail.com"
    assert redact(text, pii.find(text)) == "Call [phone removed] or mail [email removed]"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("email me at joe dot smith at gmail", "email me at [email removed]"),
        ("reach joe dot smith at gmail dot com please", "reach [email removed] please"),
        ("mail jo.smith [at] yahoo", "mail [email removed]"),
    ],
)
def test_a_spelled_out_address_is_redacted_whole(pii: PiiDetector, text: str, redacted: str) -> None:
    assert redact(text, pii.find(text)) == redacted


def test_prescreen_removes_financial_numbers_before_storage() -> None:
    stored, kinds = redact_financial("card 4111-1111-1111-1111, ssn 536 22 8714, VIN 1HGCM82633A004352")
    assert stored == "card [card number removed], ssn [SSN removed], VIN 1HGCM82633A004352"
    assert kinds == ("CREDIT_CARD", "US_SSN")
    assert redact_financial("part 04465-33471 for $12,500") == ("part 04465-33471 for $12,500", ())
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("DE89370400440532013001")
    assert [f.entity for f in financial_findings("passport 533380006")] == ["US_PASSPORT"]


@pytest.mark.parametrize(
    "text",
    ["f u c k you", "sh1t car", "a$$hole dealer", "fuuuuck this", "f*ck off", "you are an idiot", "what a scammer",
     "this dealer is a bunch of crooks", "S.H.I.T deal"],
)  # fmt: skip
def test_obfuscated_profanity_and_insults_score_high(profanity: ProfanityDetector, text: str) -> None:
    assert profanity.score(text).score >= 0.9


@pytest.mark.parametrize(
    "text",
    ["That is a hell of a deal", "Nice cockpit layout", "Minor rear end damage?", "Blow-by test was fine",
     "Delivery to Scunthorpe?", "Dickies seat covers included", "Hooker headers installed", "class of the car"],
)  # fmt: skip
def test_car_language_is_allowed(profanity: ProfanityDetector, text: str) -> None:
    assert profanity.score(text).score < 0.5


def test_normalise_undoes_obfuscation() -> None:
    assert normalise("F.U.C.K this sh1t") == "fuck this shit"
    assert normalise("hell of a deal on 2 keys") == "on 2 keys"


def test_screening_an_item_logs_nothing_at_info(pii: PiiDetector, caplog: pytest.LogCaptureFixture) -> None:
    """Presidio's per-call "Fetching all recognizers" line would be one log line per question screened."""
    with caplog.at_level(logging.INFO):
        pii.find("Call me at (415) 867-5309 after six")
    assert [record.getMessage() for record in caplog.records] == []
