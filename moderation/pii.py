"""PII in Q&A text with presidio-analyzer, fully offline.

Presidio's default `AnalyzerEngine()` loads a spaCy model (a download); here it runs the no-op NLP engine with
pattern recognizers only, region-limited phone numbers (US/CA) and an offline public-suffix list. Recognizers
that misfire on car data are left out (the UK NHS checksum passes on US phone numbers, GB/DE phone regions
read part numbers as phones; bare 9-digit passport / 8-17 digit bank patterns fire on any part number), and
replaced by ones that need a keyword ("account", "passport"). Recognizers of our own cover what sellers do to
dodge filters: spelled or mixed phone digits, "john at gmail dot com", social handles. Spans that are car data
(VINs, OBD codes, prices, mileages, stock / lot / part numbers, plates) are never PII.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import tldextract
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine, NoOpNlpEngine, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UrlRecognizer,
    UsSsnRecognizer,
)

from moderation.model import PiiFinding

log = logging.getLogger(__name__)

# tldextract's bundled snapshot of the public suffix list: no fetch, no cache directory.
_TLD: Final = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
_COMMON_TLDS: Final = frozenset(
    "com net org io co us ca info biz me ly app site online shop store ai dev xyz tv cc uk de".split()
)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email patterns, validated against the bundled suffix list instead of a fetched one."""

    def validate_result(self, pattern_text: str) -> bool:
        return _TLD(pattern_text).fqdn != ""


class StrictUrlRecognizer(UrlRecognizer):
    """A URL needs a scheme, `www.` or a common TLD: "CR-V.It runs" and "john.do" are not links."""

    def validate_result(self, pattern_text: str) -> bool:
        lowered = pattern_text.lower()
        if lowered.startswith(("http://", "https://", "www.")):
            return True
        suffix = _TLD(lowered).suffix
        return suffix.rsplit(".", 1)[-1] in _COMMON_TLDS


_NUMBER_WORDS: Final = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_DIGITISH: Final = re.compile(r"(?:\d|zero|oh|one|two|three|four|five|six|seven|eight|nine)+", re.IGNORECASE)
_TOKEN: Final = re.compile(r"[A-Za-z0-9]+")
_JOINER: Final = re.compile(r"^[\s.\-/,()+]*$")


def _digits_of(token: str) -> str:
    out, rest = [], token.lower()
    while rest:
        if rest[0].isdigit():
            out.append(rest[0])
            rest = rest[1:]
            continue
        word = next(w for w in _NUMBER_WORDS if rest.startswith(w))
        out.append(_NUMBER_WORDS[word])
        rest = rest[len(word) :]
    return "".join(out)


class SpelledPhoneRecognizer(EntityRecognizer):
    """Phone numbers written to dodge filters: "five five five 0187", "4one5 8six7 5three0nine", "5 5 5 0 1 8 7"."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PHONE_NUMBER"], name="SpelledPhoneRecognizer")

    def load(self) -> None:
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results = []
        for run in self._runs(text):
            tokens = [token for token, _, _ in run]
            digits = "".join(_digits_of(token) for token in tokens)
            spelled = any(not token.isdigit() for token in tokens)
            spaced = len(tokens) >= 5 and all(len(token) <= 2 for token in tokens)
            if 7 <= len(digits) <= 11 and (spelled or spaced):
                results.append(RecognizerResult("PHONE_NUMBER", run[0][1], run[-1][2], 0.85))
        return results

    @staticmethod
    def _runs(text: str) -> Iterable[list[tuple[str, int, int]]]:
        run: list[tuple[str, int, int]] = []
        for match in _TOKEN.finditer(text):
            token = match.group()
            joined = not run or _JOINER.match(text[run[-1][2] : match.start()]) is not None
            if _DIGITISH.fullmatch(token) and joined:
                run.append((token, match.start(), match.end()))
                continue
            if run:
                yield run
            run = [(token, match.start(), match.end())] if _DIGITISH.fullmatch(token) else []
        if run:
            yield run


_OPEN = r"\s*[\(\[\{<]?\s*"
_CLOSE = r"\s*[\)\]\}>]?\s*"
# "john.smith" as written, or spelled out: "john dot smith".
_LOCAL_PART = r"(?:[\w+\-]+\s+dot\s+)*[\w.+\-]+"
_PROVIDERS = r"(?:gmail|yahoo|hotmail|outlook|aol|icloud|protonmail|proton|live|msn|comcast)"


class ObfuscatedEmailRecognizer(PatternRecognizer):
    """ "john at gmail dot com", "john [at] gmail [dot] com", "jsmith (at) yahoo", "john @ gmail . com"."""

    PATTERNS: Final = [
        Pattern(
            "spelled at/dot",
            rf"\b{_LOCAL_PART}{_OPEN}(?:at|@){_CLOSE}[\w\-]+(?:{_OPEN}(?:dot|\.){_CLOSE}[a-z]{{2,6}})+\b",
            0.8,
        ),
        Pattern("at a provider", rf"\b{_LOCAL_PART}{_OPEN}(?:at|@){_CLOSE}{_PROVIDERS}\b", 0.8),
    ]

    def __init__(self) -> None:
        super().__init__(
            supported_entity="EMAIL_ADDRESS",
            patterns=self.PATTERNS,
            name="ObfuscatedEmailRecognizer",
            global_regex_flags=re.IGNORECASE | re.DOTALL | re.MULTILINE,
        )

    def validate_result(self, pattern_text: str) -> bool:
        lowered = pattern_text.lower()
        if re.search(_PROVIDERS + r"\s*$", lowered):
            return True
        tld = re.split(r"dot|\.", lowered)[-1].strip(" )]}>")
        return tld in _COMMON_TLDS or _TLD("x." + tld).suffix == tld


class SocialHandleRecognizer(PatternRecognizer):
    """ "@carguy_99", "insta: fastcars22", "snap me at fastcars22", "DM me on telegram carguy"."""

    PATTERNS: Final = [
        Pattern("at-handle", r"(?<![\w@.])@[A-Za-z][\w.]{2,29}\b", 0.7),
        Pattern(
            "named network",
            r"\b(?:ig|insta|instagram|snap|snapchat|telegram|tg|tiktok|twitter|facebook|fb|kik|discord|signal)"
            r"(?:\s+(?:me|is|at|handle|name|id))*\s*[:\-]?\s*@?[A-Za-z][\w.]{2,29}\d*\b",
            0.6,
        ),
    ]
    # "on facebook marketplace" and friends are not a handle.
    _NOT_HANDLES: Final = frozenset({"marketplace", "page", "group", "ad", "ads", "listing", "post", "messenger"})

    def __init__(self) -> None:
        super().__init__(
            supported_entity="SOCIAL_HANDLE",
            patterns=self.PATTERNS,
            name="SocialHandleRecognizer",
            global_regex_flags=re.IGNORECASE,
        )

    def validate_result(self, pattern_text: str) -> bool:
        handle = re.split(r"[\s:@\-]+", pattern_text.strip())[-1].lower()
        if pattern_text.startswith("@"):
            return True
        return handle not in self._NOT_HANDLES and (any(c.isdigit() for c in handle) or "_" in handle or "." in handle)


class KeywordNumberRecognizer(PatternRecognizer):
    """Bank account and passport numbers only next to their keyword (bare digit runs are part numbers)."""

    def __init__(self, entity: str, keywords: str) -> None:
        pattern = Pattern(
            f"{entity} with keyword",
            rf"\b(?:{keywords})\b(?:\s*(?:number|num|no\.?|#|is|:))*\s*\d[\d \-]{{5,20}}\d\b",
            0.8,
        )
        super().__init__(
            supported_entity=entity, patterns=[pattern], name=f"{entity}Keyword", global_regex_flags=re.IGNORECASE
        )


class NanpPhoneRecognizer(PatternRecognizer):
    """Any formatted 10-digit North American number, valid or not (phonenumbers rejects 555 and unused codes)."""

    PATTERNS: Final = [
        Pattern(
            "nanp",
            r"(?<![\w\-.$#])(?:\+?1[\s.\-]?)?\(?[2-9]\d{2}\)?[\s.\-]?[2-9]\d{2}[\s.\-]?\d{4}(?![\w\-])",
            0.6,
        )
    ]

    def __init__(self) -> None:
        super().__init__(supported_entity="PHONE_NUMBER", patterns=self.PATTERNS, name="NanpPhoneRecognizer")


# Car data that looks like numbers: never PII, whatever a recognizer thinks.
_CAR_DATA: Final = re.compile(
    r"\b[A-HJ-NPR-Z0-9]{17}\b"  # VIN
    r"|\b[PBCU][0-3][0-9A-F]{3}\b"  # OBD-II codes
    r"|\$\s?\d[\d,]*(?:\.\d+)?\s?[kK]?"  # prices
    r"|\b\d{1,3}(?:[,. ]\d{3})+\s?(?:miles|mi|km|kms)\b|\b\d+\s?[kK]?\s?(?:miles|mi|km|kms)\b"  # mileage
    r"|\b(?:stock|stk|lot|part|p/n|pn|oem|sku|ref|invoice|order|claim|plate|tag|license plate)"
    r"(?:\s*(?:number|no\.?|num|#))?\s*[#:]?\s*[A-Z0-9][A-Z0-9\-]{2,18}"  # stock, lot, part, plate numbers
    r"|\b\d{5}-\d{5}\b|\b(?=[A-Z0-9\-]*[A-Z])[A-Z0-9]{2,6}-[A-Z0-9]{3,6}-[A-Z0-9]{2,6}\b",  # part numbers
    re.IGNORECASE,
)


def installed_ner_engine(model: str | None) -> NlpEngine | None:
    """A spaCy NER engine when `model` is an installed package or a model directory; never downloaded."""
    if not model:
        return None
    import spacy.util

    if not (spacy.util.is_package(model) or Path(model).is_dir()):
        log.info("spaCy model %s is not installed: PII patterns only (no PERSON / LOCATION)", model)
        return None
    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
    engine.load()
    return engine


@lru_cache(maxsize=2)
def build_analyzer(spacy_model: str | None = None) -> AnalyzerEngine:
    """The offline engine: pattern recognizers above on the no-op NLP engine, or on an installed spaCy model
    (then also PERSON / LOCATION from its NER); built once per process."""
    # Presidio logs "Fetching all recognizers for language en" at INFO on every analyze call: one line per item.
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        OfflineEmailRecognizer(),
        ObfuscatedEmailRecognizer(),
        PhoneRecognizer(supported_regions=("US", "CA")),
        NanpPhoneRecognizer(),
        SpelledPhoneRecognizer(),
        SocialHandleRecognizer(),
        StrictUrlRecognizer(),
        IpRecognizer(),
        CreditCardRecognizer(),
        UsSsnRecognizer(),
        IbanRecognizer(),
        KeywordNumberRecognizer("US_BANK_NUMBER", r"account|acct|a/c|routing|aba|checking|savings"),
        KeywordNumberRecognizer("US_PASSPORT", r"passport"),
    ):
        registry.add_recognizer(recognizer)
    nlp = installed_ner_engine(spacy_model)
    if nlp is not None:
        registry.add_recognizer(SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]))
    else:
        nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
        nlp.load()
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


class PiiDetector:
    """Finds PII spans; `redact` replaces them by placeholders."""

    def __init__(
        self, analyzer: AnalyzerEngine | None = None, *, min_score: float = 0.4, spacy_model: str | None = None
    ) -> None:
        self.analyzer = analyzer or build_analyzer(spacy_model)
        self.min_score = min_score

    def find(self, text: str) -> list[PiiFinding]:
        results: list[Any] = self.analyzer.analyze(text, language="en", score_threshold=self.min_score)
        car_spans = [m.span() for m in _CAR_DATA.finditer(text)]
        findings = [
            PiiFinding(r.entity_type, r.start, r.end, float(r.score))
            for r in results
            if not _inside_any(r.start, r.end, car_spans) or r.entity_type in ("EMAIL_ADDRESS", "URL")
        ]
        return _without_overlaps(findings)


def _inside_any(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s <= start and end <= e for s, e in spans) or any(
        s < end and start < e and (min(end, e) - max(start, s)) >= (end - start) / 2 for s, e in spans
    )


def _without_overlaps(findings: list[PiiFinding]) -> list[PiiFinding]:
    """Keep the widest, then most financial, then highest-scoring finding where spans overlap."""
    ranked = sorted(findings, key=lambda f: (-(f.end - f.start), not f.financial, -f.score))
    kept: list[PiiFinding] = []
    for finding in ranked:
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)
