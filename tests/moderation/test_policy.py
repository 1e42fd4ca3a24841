"""The verdict policy and the circuit breaker (pure)."""

from __future__ import annotations

import pytest

from moderation.breaker import CircuitBreaker, CircuitOpen
from moderation.model import Detection, PiiFinding
from moderation.settings import PolicySettings
from moderation.verdict import decide

POLICY = PolicySettings(profanity_reject=0.8, profanity_review=0.5, toxicity_reject=0.8, toxicity_review=0.5)


def test_clean_text_is_approved_as_written() -> None:
    verdict = decide("Any accidents?", Detection(profanity=0.1), POLICY)
    assert (verdict.status, verdict.text, verdict.flagged, verdict.reason) == (
        "approved",
        "Any accidents?",
        False,
        None,
    )


def test_contact_details_are_published_redacted_and_flagged_for_audit() -> None:
    text = "Call 415-867-5309"
    verdict = decide(text, Detection(pii=(PiiFinding("PHONE_NUMBER", 5, 17, 0.9),)), POLICY)
    assert (verdict.status, verdict.text, verdict.flagged) == ("approved", "Call [phone removed]", True)
    assert verdict.review_reason == "contact_details"
    assert verdict.redactions == ("PHONE_NUMBER",)


def test_financial_data_is_rejected_and_only_the_redacted_text_kept() -> None:
    text = "card 4111 1111 1111 1111"
    verdict = decide(text, Detection(pii=(PiiFinding("CREDIT_CARD", 5, 24, 1.0),)), POLICY)
    assert (verdict.status, verdict.text) == ("rejected", "card [card number removed]")
    assert "card" in (verdict.reason or "")
    # Already replaced at submission: the placeholder is all the models see, the verdict still rejects.
    prescreened = decide("card [card number removed]", Detection(), POLICY, ("CREDIT_CARD",))
    assert prescreened.status == "rejected"


def test_profanity_rejects_and_uncertain_scores_go_to_review() -> None:
    assert decide("x", Detection(profanity=0.95), POLICY).status == "rejected"
    assert decide("x", Detection(profanity=0.2, toxicity=0.9), POLICY).status == "rejected"
    uncertain = decide("x", Detection(profanity=0.6), POLICY)
    assert (uncertain.status, uncertain.flagged, uncertain.review_reason) == ("pending_review", True, "uncertain")


def test_low_scoring_pii_is_ignored() -> None:
    verdict = decide("lot 12", Detection(pii=(PiiFinding("PHONE_NUMBER", 0, 6, 0.1),)), POLICY)
    assert verdict.status == "approved"
    assert verdict.text == "lot 12"


def test_names_from_the_optional_ner_model_are_redacted_places_are_not() -> None:
    text = "Ask for Tony Smith in Denver"
    findings = (PiiFinding("PERSON", 8, 18, 0.85), PiiFinding("LOCATION", 22, 28, 0.85))
    verdict = decide(text, Detection(pii=findings), POLICY)
    assert verdict.text == "Ask for [name removed] in Denver"
    assert verdict.redactions == ("PERSON",)


def test_review_threshold_above_reject_is_refused() -> None:
    with pytest.raises(ValueError, match="review thresholds"):
        PolicySettings(profanity_review=0.9, profanity_reject=0.8)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_lets_one_trial_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    breaker.before_call()
    breaker.record_success()  # a success resets the count
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now = 10.0
    breaker.before_call()  # the half-open trial
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # only one at a time
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.retry_at() == 20.0
    clock.now = 20.0
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"
