"""Profanity and insults: alt-profanity-check's linear model over text normalised against obfuscation.

Sellers and buyers write "f u c k", "sh1t", "a$$hole", "fuuuuck", "f*ck"; the text is normalised (leet and
symbols to letters, spaced letters joined, long letter runs collapsed) and a short lexicon of roots catches what
the model's vocabulary misses. Car language that trips naive filters ("cockpit", "hell of a deal", "rear end",
"blow-by", Scunthorpe) is removed before scoring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# Whole phrases that are car talk or place names, never profanity (matched on lower-cased text).
ALLOWLIST: Final = (
    "hell of a deal", "hell of a car", "hell of a truck", "one hell of", "heck of a deal", "cockpit", "stopcock",
    "rear end", "rear-end", "rear ended", "rear-ended", "blow-by", "blowby", "blow by", "blown head gasket",
    "blown gasket", "blew a gasket", "scunthorpe", "penistone", "shiitake", "shitake", "cocktail", "hooker headers",
    "hooker header", "ball joint", "ball joints", "lug nuts", "lug nut", "nuts and bolts", "butt connector",
    "butt connectors", "sucks air", "suck air", "dickies", "dickens", "cockburn", "hancock", "peacock",
    "babcock", "woodcock", "kill switch", "killer deal", "killer price", "sick sound", "sick build", "beast mode",
    "pull like a beast", "hard top", "hardtop", "stiff suspension", "stiff ride", "hot rod", "head unit",
)  # fmt: skip

# Roots that are profane wherever they appear in a normalised word, and words that are only as whole words.
ROOTS: Final = ("fuck", "fuk", "fck", "shit", "cunt", "bitch", "motherf", "asshole", "bullsh", "wank", "twat")
WORDS: Final = frozenset(
    "ass arse dick dickhead cock prick piss pissed slut whore douche douchebag jackass dumbass retard retarded "
    "bastard bastards bollocks tits turd scumbag shithead stfu wtf fu fk".split()
)
# Insults without a swear word: "you are an idiot", "what a scammer".
INSULTS: Final = (
    "idiot|moron|imbecile|clown|loser|scammer|scam artist|crook|liar|thief|fraud|joke|lowlife|low life|pig|"
    "creep|dumb|stupid|pathetic|useless|incompetent|clueless|brainless|worthless|trash|garbage|dimwit|nitwit|"
    "fool|cheat|cheater|con artist|shyster|weasel|snake|parasite|hack"
)
_INSULT: Final = re.compile(
    rf"\b(?:you(?:'re| are|re| r| guys are| people are)?|ur|u r|your dealership is|this dealer is|what an?|such an?|"
    rf"bunch of|you)\s+(?:\w+\s+){{0,2}}?(?:{INSULTS})s?\b",
    re.IGNORECASE,
)
_LEET: Final = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
                              "!": "i", "|": "i", "+": "t", "€": "e", "(": "c"})  # fmt: skip
_ALLOW: Final = re.compile("|".join(rf"\b{re.escape(p)}\b" for p in sorted(ALLOWLIST, key=len, reverse=True)))
_SPACED: Final = re.compile(r"\b(?:[a-z][\s.\-_*,]{1,2}){2,}[a-z]\b")
_WORD: Final = re.compile(r"[a-z0-9@$!|+*€(]+")
_RUNS: Final = re.compile(r"(.)\1{2,}")


def normalise(text: str) -> str:
    """Lower-case, allowlisted phrases removed, spaced letters joined, leet undone, long letter runs collapsed."""
    lowered = _ALLOW.sub(" ", text.lower())
    joined = _SPACED.sub(lambda m: re.sub(r"[\s.\-_*,]", "", m.group()), lowered)
    words = []
    for word in _WORD.findall(joined):
        if any(c.isalpha() for c in word) and not word.isalpha():
            word = word.translate(_LEET)
        words.append(_RUNS.sub(r"\1\1", word))
    return _ALLOW.sub(" ", " ".join(words))


def _single(word: str) -> str:
    return re.sub(r"(.)\1+", r"\1", word)


_SINGLE_ROOTS: Final = tuple(_single(root) for root in ROOTS)
_SINGLE_WORDS: Final = frozenset(_single(word) for word in WORDS if len(_single(word)) > 3)


def _variants(word: str) -> set[str]:
    starred = {word.replace("*", vowel) for vowel in "aeiou"} | {word.replace("*", "")} if "*" in word else {word}
    return starred | {_single(w) for w in starred}


def lexicon_hit(normalised: str) -> bool:
    for word in normalised.split():
        for variant in _variants(word):
            if variant in WORDS or variant in _SINGLE_WORDS or any(root in variant for root in ROOTS):
                return True
            if any(root in variant for root in _SINGLE_ROOTS):
                return True
    return False


@dataclass(frozen=True, slots=True)
class ProfanityScore:
    score: float  # 0..1, the larger of the model's probability and a rule hit
    model: float
    rule: str | None  # "lexicon" or "insult" when a rule fired


class ProfanityDetector:
    """alt-profanity-check (its linear model ships in the package) over the normalised text, plus rules."""

    def __init__(self) -> None:
        from profanity_check import predict_prob  # loads the model once, at construction

        self._predict = predict_prob

    def score(self, text: str) -> ProfanityScore:
        normalised = normalise(text)
        model = float(self._predict([normalised])[0]) if normalised.strip() else 0.0
        rule = "lexicon" if lexicon_hit(normalised) else "insult" if _INSULT.search(_ALLOW.sub(" ", text)) else None
        return ProfanityScore(max(model, 0.99 if rule else 0.0), model, rule)
