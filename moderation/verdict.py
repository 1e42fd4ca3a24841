"""The verdict policy: from what the detectors found to approved / rejected / pending review.

- card, SSN, bank or passport numbers: rejected, and only the redacted text is kept;
- profanity or toxicity at or above the reject threshold: rejected, with the reason shown to the author;
- a score between the review and reject thresholds: pending review by a moderator;
- contact details (phone, email, handle, link): published with placeholders, flagged for audit;
- nothing: approved as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from moderation.model import CONTACT_ENTITIES, FINANCIAL_ENTITIES, Detection, Verdict, redact
from moderation.settings import PolicySettings

REASONS: Final = {
    "financial_data": "Removed: it contained a card, bank, social security or passport number. Never share them here.",
    "profanity": "Rejected: it contains offensive language. Please rephrase and post again.",
    "uncertain": "Awaiting review by a moderator.",
    "contact_details": "Published with contact details removed: keep the conversation on the marketplace.",
    "moderation_delayed": "Awaiting review: automatic moderation is delayed.",
}


def decide(text: str, detection: Detection, policy: PolicySettings, prescreened: Sequence[str] = ()) -> Verdict:
    """`prescreened`: entity types already replaced in `text` when it was submitted (financial data)."""
    screened = CONTACT_ENTITIES | FINANCIAL_ENTITIES
    findings = tuple(f for f in detection.pii if f.score >= policy.pii_min_score and f.entity in screened)
    entities = {f.entity for f in findings} | set(prescreened)
    redacted = redact(text, findings) if findings else text
    redactions = tuple(sorted(entities))
    scores = {**detection.scores(), "pii": list(redactions)}
    toxicity = detection.toxicity or 0.0
    if entities & FINANCIAL_ENTITIES:
        return Verdict("rejected", redacted, REASONS["financial_data"], "financial_data", False, redactions, scores)
    if detection.profanity >= policy.profanity_reject or toxicity >= policy.toxicity_reject:
        return Verdict("rejected", redacted, REASONS["profanity"], "profanity", False, redactions, scores)
    if detection.profanity >= policy.profanity_review or toxicity >= policy.toxicity_review:
        return Verdict("pending_review", redacted, REASONS["uncertain"], "uncertain", True, redactions, scores)
    if entities & CONTACT_ENTITIES:
        return Verdict("approved", redacted, REASONS["contact_details"], "contact_details", True, redactions, scores)
    return Verdict("approved", text, None, None, False, redactions, scores)
