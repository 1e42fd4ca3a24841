"""Writes items.jsonl: the labelled car-Q&A evaluation set of bench/moderation.py (deterministic, seeded).

Each line: {"id", "text", "category", "template", "labels": [contact|financial|profanity], "decision",
"hard_negative"}. `decision` is what the policy should do: rejected (financial data or profanity), redacted
(contact details published with placeholders) or approved. Templates carry the split: bench/moderation.py puts
every other template of each category in dev and the rest in test, so no sentence shape is seen in both.

    .venv/bin/python bench/data/moderation/generate.py
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from pathlib import Path

RNG = random.Random(20261124)
OUT = Path(__file__).with_name("items.jsonl")
PER_TEMPLATE = 8

AREA_CODES = ["415", "212", "303", "720", "312", "617", "702", "404", "206", "512", "604", "416", "305", "469"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FIRST = ["john", "mike", "sara", "jdoe", "tony", "carlos", "amy", "dave", "kim", "luis", "beth", "raj"]
LAST = ["smith", "garcia", "lee", "nguyen", "brown", "patel", "miller", "jones", "kowalski", "ortiz"]
PROVIDERS = ["gmail", "yahoo", "hotmail", "outlook", "aol", "icloud"]
MODELS = ["Camry", "F-150", "Civic", "Silverado", "CR-V", "Wrangler", "Model 3", "Tacoma", "Accord", "RAV4"]


def phone() -> str:
    return f"{RNG.choice(AREA_CODES)}{RNG.randint(2, 9)}{RNG.randint(0, 99):02d}{RNG.randint(0, 9999):04d}"


def formatted_phone() -> str:
    d = phone()
    shapes = [f"({d[:3]}) {d[3:6]}-{d[6:]}", f"{d[:3]}-{d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}", d,
              f"+1 {d[:3]} {d[3:6]} {d[6:]}", f"1-{d[:3]}-{d[3:6]}-{d[6:]}", f"{d[:3]} {d[3:6]} {d[6:]}"]  # fmt: skip
    return RNG.choice(shapes)


def spelled_phone() -> str:
    d = phone()
    style = RNG.randrange(3)
    if style == 0:  # every digit a word
        return " ".join(NUMBER_WORDS[int(c)] for c in d)
    if style == 1:  # words and digits mixed per group
        groups = [d[:3], d[3:6], d[6:]]
        return " ".join("".join(NUMBER_WORDS[int(c)] if RNG.random() < 0.5 else c for c in g) for g in groups)
    return " ".join(d)  # spaced digits


def email() -> str:
    return f"{RNG.choice(FIRST)}{RNG.choice(['.', '_', ''])}{RNG.choice(LAST)}{RNG.randint(1, 99)}"


def plain_email() -> str:
    return f"{email()}@{RNG.choice(PROVIDERS)}.com"


def obfuscated_email() -> str:
    user, provider = email(), RNG.choice(PROVIDERS)
    return RNG.choice([f"{user} at {provider} dot com", f"{user} [at] {provider} [dot] com",
                       f"{user}(at){provider}(dot)com", f"{user} @ {provider} . com",
                       f"{user} at {provider}"])  # fmt: skip


def handle() -> str:
    word = RNG.choice(["cars", "autos", "garage", "motors"])
    name = f"{RNG.choice(FIRST)}{RNG.choice(['_', ''])}{word}{RNG.randint(1, 99)}"
    return RNG.choice([f"@{name}", f"insta: {name}", f"snap me at {name}", f"telegram @{name}", f"IG {name}"])


def url() -> str:
    path = "".join(RNG.choices(string.ascii_lowercase + string.digits, k=6))
    return RNG.choice([f"https://bit.ly/{path}", f"www.{RNG.choice(LAST)}autos.com", f"carsdirect.com/deal/{path}",
                       f"http://{RNG.choice(LAST)}motors.net/{path}"])  # fmt: skip


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(RNG.choices(string.digits, k=length - len(prefix) - 1))
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return body + str((10 - total % 10) % 10)


def card() -> str:
    number = luhn_complete(RNG.choice(["4", "51", "55", "37", "6011"]), RNG.choice([16, 16, 15]))
    return RNG.choice([number, " ".join(number[i : i + 4] for i in range(0, len(number), 4)),
                       "-".join(number[i : i + 4] for i in range(0, len(number), 4))])  # fmt: skip


def ssn() -> str:
    area = RNG.choice([n for n in range(1, 900) if n != 666])
    sep = RNG.choice(["-", " "])
    return f"{area:03d}{sep}{RNG.randint(1, 99):02d}{sep}{RNG.randint(1, 9999):04d}"


def iban() -> str:
    country, length = RNG.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14)])
    if country == "GB":
        bban = "NWBK" + "".join(RNG.choices(string.digits, k=14))
    elif country == "NL":
        bban = "ABNA" + "".join(RNG.choices(string.digits, k=10))
    else:
        bban = "".join(RNG.choices(string.digits, k=length))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    compact = f"{country}{check:02d}{bban}"
    return RNG.choice([compact, " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))])


def bank() -> str:
    digits = "".join(RNG.choices(string.digits, k=RNG.randint(8, 12)))
    return RNG.choice([f"account number {digits}", f"acct # {digits}", f"routing 0{digits[:8]}",
                       f"checking account {digits}"])  # fmt: skip


SWEARS = ["fuck", "shit", "bullshit", "asshole", "bitch", "dickhead", "motherfucker", "piss off", "bastard", "crap"]


LEET = str.maketrans("iasoe", "1@$03")


def obfuscate(word: str) -> str:
    style = RNG.randrange(5)
    if style == 0:
        return word.translate(LEET)
    if style == 1:
        return " ".join(word)
    if style == 2:
        return ".".join(word)
    if style == 3:
        return "".join(c * 4 if c in "aeiou" else c for c in word)
    vowel = next((i for i, c in enumerate(word) if c in "aeiou"), 1)
    return word[:vowel] + "*" + word[vowel + 1 :]


INSULTS = ["idiot", "moron", "clown", "scammer", "liar", "crook", "loser", "joke", "fraud", "con artist"]


def vin() -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    return "".join(RNG.choices("123459JKLSWYZ", k=1)) + "".join(RNG.choices(alphabet, k=16))


def plate() -> str:
    return RNG.choice([f"{RNG.randint(1, 9)}{''.join(RNG.choices(string.ascii_uppercase, k=3))}{RNG.randint(100, 999)}",
                       f"{''.join(RNG.choices(string.ascii_uppercase, k=3))}-{RNG.randint(1000, 9999)}"])  # fmt: skip


def part() -> str:
    letters, alnum = string.ascii_uppercase, string.ascii_uppercase + string.digits
    return RNG.choice([f"{RNG.randint(10000, 99999)}-{RNG.randint(10000, 99999)}",
                       f"{RNG.randint(10, 99)}{''.join(RNG.choices(letters, k=1))}-{RNG.randint(100, 999)}-"
                       f"{''.join(RNG.choices(alnum, k=4))}",
                       f"{RNG.randint(90000, 90999)}-{''.join(RNG.choices(letters, k=4))}1"])  # fmt: skip


def mileage() -> str:
    miles = RNG.randint(5, 240) * 1000 + RNG.randint(0, 999)
    return RNG.choice([f"{miles:,} miles", f"{miles // 1000}k miles", f"{miles} mi", f"{miles:,} km"])


def price() -> str:
    value = RNG.randint(30, 900) * 100
    return RNG.choice([f"${value:,}", f"${value}", f"${value / 1000:.1f}k", f"$ {value:,}.00"])


def obd() -> str:
    return RNG.choice("PBCU") + RNG.choice("01") + "".join(RNG.choices("0123456789", k=3))


def model() -> str:
    return RNG.choice(MODELS)


Fill = Callable[[], str]
# category -> (labels, expected decision, hard negative, templates with {x} slots and their fills)
CATEGORIES: dict[str, tuple[list[str], str, bool, list[str], dict[str, Fill]]] = {
    "phone_formatted": (["contact"], "redacted", False, [
        "Call me at {p} to talk price", "Text {p} if the {m} is still there", "my cell is {p}, call after 5",
        "Reach me on {p} for a cash offer", "{p} - ask for Tony, I want the {m}", "WhatsApp {p} and we can deal",
    ], {"p": formatted_phone, "m": model}),
    "phone_spelled": (["contact"], "redacted", False, [
        "call me {p} for a better price", "text {p} before the auction ends", "my number is {p}",
        "reach me at {p} about the {m}", "hit me up {p}", "phone {p} lets make a deal off the site",
    ], {"p": spelled_phone, "m": model}),
    "email": (["contact"], "redacted", False, [
        "Email me at {e} with more pictures", "send the carfax to {e}", "{e} is my email, write me",
        "Contact {e} for the service records", "write to {e} and we skip the fees", "reply to {e} please",
    ], {"e": plain_email}),
    "email_obfuscated": (["contact"], "redacted", False, [
        "email me {e} for pics", "send details to {e}", "my mail is {e}", "contact {e} to deal direct",
        "write {e} about the {m}", "reach me {e} today",
    ], {"e": obfuscated_email, "m": model}),
    "handle": (["contact"], "redacted", False, [
        "DM me on {h}", "message {h} for more pics of the {m}", "follow {h} for the walkaround video",
        "hit me up {h}", "{h} - message me there", "add me {h} we can talk",
    ], {"h": handle, "m": model}),
    "url": (["contact"], "redacted", False, [
        "more photos at {u}", "see the full listing on {u}", "video here {u}", "check {u} for a cheaper price",
        "details at {u}", "my other cars are on {u}",
    ], {"u": url}),
    "card": (["financial"], "rejected", False, [
        "I can put the deposit on my card {c}", "card number {c} exp 09/27", "charge {c} for the hold",
        "use {c} to reserve the {m}", "my visa {c} cvv 123", "deposit from {c} ok?",
    ], {"c": card, "m": model}),
    "ssn": (["financial"], "rejected", False, [
        "for financing my SSN is {s}", "ssn {s} for the credit check", "social security {s}",
        "my social is {s}, run the credit app", "credit app: name John, SSN {s}", "use SSN {s} for the loan",
    ], {"s": ssn}),
    "iban": (["financial"], "rejected", False, [
        "wire the refund to IBAN {i}", "my IBAN is {i}", "send money to {i}", "bank transfer to {i} ok?",
        "pay out to {i}", "IBAN for the deposit: {i}",
    ], {"i": iban}),
    "bank": (["financial"], "rejected", False, [
        "wire it to my {b}", "my {b} for the deposit", "send funds to {b}", "deposit refund to {b}",
        "direct deposit {b}", "use {b} for the wire",
    ], {"b": bank}),
    "profanity": (["profanity"], "rejected", False, [
        "this {m} is a {w} car", "what the {w} is wrong with the price", "{w} you, lowball seller",
        "you are a {w}", "total {w} listing", "the paint job is {w}",
    ], {"w": lambda: RNG.choice(SWEARS), "m": model}),
    "profanity_obfuscated": (["profanity"], "rejected", False, [
        "this {m} is {w}", "{w} off with that price", "what a {w} dealer", "you {w}",
        "{w} listing, waste of time", "such a {w} deal",
    ], {"w": lambda: obfuscate(RNG.choice(["fuck", "shit", "asshole", "bitch", "bullshit", "fucking"])),
        "m": model}),
    "insult": (["profanity"], "rejected", False, [
        "you are an {x}", "what a {x}, this price is a rip off", "this dealer is a {x}", "you're a total {x}",
        "such an {x} seller", "you guys are {x}s",
    ], {"x": lambda: RNG.choice(INSULTS)}),
    "mixed": (["contact", "profanity"], "rejected", False, [
        "call {p} you {x}", "{w} this site, email {e}", "text {p}, this {w} auction is rigged",
        "you {x}, I'll sell it myself: {e}",
    ], {"p": formatted_phone, "e": plain_email, "w": lambda: RNG.choice(["fuck", "screw", "shit"]),
        "x": lambda: RNG.choice(["idiot", "moron", "clown"])}),
    "hard_negative_specs": ([], "approved", True, [
        "Does the {m} do 0-60 in 5.2 s?", "Is the 20,000-mile service done? Oil is 5W-30?",
        "Can I pick it up at ZIP {z} after 5 pm on 04/27?", "2 keys, 3 owners, 4 new tires since 2019?",
        "Is it the 5.0L V8 or the 2.7L EcoBoost?", "Window sticker says 8,500 lb towing and 23 mpg, right?",
        "That price is killer, sick sound too. Any mods?", "Is lot 1234 at gate 5 of the auction yard?",
    ], {"m": model, "z": lambda: f"{RNG.randint(10000, 99999)}-{RNG.randint(1000, 9999)}"}),
    "clean": ([], "approved", False, [
        "Does this {m} have a clean title?", "How many keys come with it?", "Were the brakes done recently?",
        "Any accidents on the history report?", "Can I inspect it before the auction closes?",
        "Is the factory warranty transferable?", "Do you arrange transport out of state?",
        "What tires are on it and how much tread is left?",
    ], {"m": model}),
    "hard_negative_numbers": ([], "approved", True, [
        "VIN {v} - is the title clean?", "Is {v} the right VIN? The photo shows another",
        "Plate {pl}, registration current?", "Does it need part {pa} replaced?", "It threw code {o} last week, fixed?",
        "It shows {mi}, any service records?",
        "Would you take {pr} for it?", "Stock #{st} and lot {lt}: same car?", "Part number {pa} or the OEM one?",
        "At {mi} was the timing belt done? Asking {pr}",
    ], {"v": vin, "pl": plate, "pa": part, "o": obd, "mi": mileage, "pr": price,
        "st": lambda: f"{RNG.choice('ABCKT')}{RNG.randint(10000, 99999)}", "lt": lambda: str(RNG.randint(1, 400))}),
    "hard_negative_words": ([], "approved", True, [
        "That is a hell of a deal for a {m}", "Nice cockpit, any wear on the seats?", "Any rear end damage?",
        "Blow-by test results on this {m}?", "Hooker headers installed or stock?", "Is it going to Scunthorpe?",
        "Dickies seat covers included?", "One hell of a truck, does it tow 10k?",
    ], {"m": model}),
}  # fmt: skip


OPENERS = ["", "", "Hi, ", "Hello! ", "Quick question: ", "Hey. ", "Good morning, ", "Dealer: "]
CLOSERS = ["", "", " Thanks!", " thx", " Please advise.", " Thank you.", " Cheers", " ASAP"]


def render(template: str, fills: dict[str, Fill]) -> str:
    values = {name: fill() for name, fill in fills.items() if "{" + name + "}" in template}
    return RNG.choice(OPENERS) + template.format(**values) + RNG.choice(CLOSERS)


def main() -> None:
    rows: list[dict[str, object]] = []
    for category, (labels, decision, hard, templates, fills) in CATEGORIES.items():
        for number, template in enumerate(templates):
            texts: set[str] = set()
            for _ in range(PER_TEMPLATE * 4):
                if len(texts) == PER_TEMPLATE:
                    break
                texts.add(render(template, fills))
            for text in sorted(texts):
                rows.append({"id": len(rows) + 1, "text": text, "category": category,
                             "template": f"{category}/{number}", "labels": labels, "decision": decision,
                             "hard_negative": hard})  # fmt: skip
    OUT.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"wrote {len(rows)} items to {OUT}")


if __name__ == "__main__":
    main()
