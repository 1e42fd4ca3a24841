"""The vocabulary of Q&A moderation: findings, detections, verdicts (no models, no SQL, no Kafka)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

Kind = Literal["question", "answer"]
KINDS: Final[tuple[Kind, ...]] = ("question", "answer")
TABLES: Final[dict[Kind, str]] = {"question": "questions", "answer": "answers"}

# Categories decide the verdict: contact details are redacted and published, financial data is rejected.
# PERSON comes from an optional spaCy NER model; LOCATION (cities, states) is normal car talk and is kept.
CONTACT_ENTITIES: Final = frozenset({"EMAIL_ADDRESS", "PHONE_NUMBER", "URL", "SOCIAL_HANDLE", "IP_ADDRESS", "PERSON"})
FINANCIAL_ENTITIES: Final = frozenset({"CREDIT_CARD", "US_SSN", "IBAN_CODE", "US_BANK_NUMBER", "US_PASSPORT"})

PLACEHOLDERS: Final = {
    "EMAIL_ADDRESS": "[email removed]",
    "PHONE_NUMBER": "[phone removed]",
    "URL": "[link removed]",
    "SOCIAL_HANDLE": "[handle removed]",
    "IP_ADDRESS": "[address removed]",
    "PERSON": "[name removed]",
    "CREDIT_CARD": "[card number removed]",
    "US_SSN": "[SSN removed]",
    "IBAN_CODE": "[bank account removed]",
    "US_BANK_NUMBER": "[bank account removed]",
    "US_PASSPORT": "[passport number removed]",
}


@dataclass(frozen=True, slots=True)
class PiiFinding:
    entity: str
    start: int
    end: int
    score: float

    @property
    def financial(self) -> bool:
        return self.entity in FINANCIAL_ENTITIES


@dataclass(frozen=True, slots=True)
class Detection:
    """What the detectors found in one text."""

    pii: tuple[PiiFinding, ...] = ()
    profanity: float = 0.0
    profanity_rule: str | None = None  # "lexicon" / "insult" when a rule fired
    toxicity: float | None = None  # detoxify's highest class score, when a checkpoint is configured

    def scores(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "profanity": round(self.profanity, 4),
            "pii": sorted({finding.entity for finding in self.pii}),
        }
        if self.profanity_rule:
            body["rule"] = self.profanity_rule
        if self.toxicity is not None:
            body["toxicity"] = round(self.toxicity, 4)
        return body


Status = Literal["approved", "rejected", "pending_review"]


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    text: str  # what is stored (and published when approved): redacted where PII was found
    reason: str | None  # shown to the author
    review_reason: str | None = None  # why a human should look: contact_details, uncertain, ...
    flagged: bool = False
    redactions: tuple[str, ...] = ()
    scores: dict[str, Any] = field(default_factory=dict)


def redact(text: str, findings: Iterable[PiiFinding]) -> str:
    """`text` with every finding replaced by its placeholder (findings must not overlap)."""
    out, cursor = [], 0
    for finding in sorted(findings, key=lambda f: f.start):
        out.append(text[cursor : finding.start])
        out.append(PLACEHOLDERS.get(finding.entity, "[removed]"))
        cursor = finding.end
    out.append(text[cursor:])
    return "".join(out)
