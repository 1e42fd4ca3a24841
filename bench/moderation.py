"""Q&A moderation quality and speed on the labelled set bench/data/moderation/items.jsonl.

The set is split by template (every other template of each category in dev, the rest in test). Thresholds
(profanity reject / review, PII minimum score) are tuned on dev only; everything reported is measured on test:
per-class precision / recall with 95% Wilson intervals, structured-PII recall, hard negatives flagged, decision
accuracy, per-item latency (p50 / p95) and items/s of the production path (submission pre-screen + detectors +
verdict policy), single-threaded on this machine.

    .venv/bin/python bench/moderation.py [--items bench/data/moderation/items.jsonl]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import percentile  # noqa: E402
from moderation.detectors import ModelDetector  # noqa: E402
from moderation.model import CONTACT_ENTITIES, FINANCIAL_ENTITIES, Detection  # noqa: E402
from moderation.prescreen import redact_financial  # noqa: E402
from moderation.settings import ModerationSettings, PolicySettings  # noqa: E402
from moderation.verdict import decide  # noqa: E402

CLASSES = ("contact", "financial", "profanity")
GOALS = {"structured PII recall": 0.95, "profanity F1": 0.90, "p95 ms": 25.0}


@dataclass
class Scored:
    item: dict[str, Any]
    stored: str
    prescreened: tuple[str, ...]
    detection: Detection
    seconds: float


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if total == 0:
        return (math.nan, math.nan)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (centre - half, centre + half)


def split(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dev: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    for item in items:
        number = int(item["template"].rsplit("/", 1)[1])
        (dev if number % 2 == 0 else test).append(item)
    return dev, test


def score_all(detector: ModelDetector, items: list[dict[str, Any]]) -> list[Scored]:
    scored = []
    for item in items:
        started = time.perf_counter()
        stored, prescreened = redact_financial(item["text"])
        detection = detector.detect(stored)
        scored.append(Scored(item, stored, prescreened, detection, time.perf_counter() - started))
    return scored


def predicted(s: Scored, policy: PolicySettings) -> tuple[set[str], str]:
    """The classes found and the decision (approved / redacted / rejected / review) under `policy`."""
    entities = {f.entity for f in s.detection.pii if f.score >= policy.pii_min_score} | set(s.prescreened)
    classes = set()
    if entities & CONTACT_ENTITIES:
        classes.add("contact")
    if entities & FINANCIAL_ENTITIES:
        classes.add("financial")
    if s.detection.profanity >= policy.profanity_reject:
        classes.add("profanity")
    verdict = decide(s.stored, s.detection, policy, s.prescreened)
    decision = {"pending_review": "review", "rejected": "rejected"}.get(verdict.status, "approved")
    if verdict.status == "approved" and verdict.text != s.stored:
        decision = "redacted"
    return classes, decision


def counts(scored: list[Scored], policy: PolicySettings, label: str) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for s in scored:
        found, truth = label in predicted(s, policy)[0], label in s.item["labels"]
        tp += found and truth
        fp += found and not truth
        fn += truth and not found
    return tp, fp, fn


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def tune(dev: list[Scored]) -> PolicySettings:
    """The thresholds with the best dev objective: profanity F1 + PII F1, no hard negative flagged."""
    best: tuple[float, PolicySettings] | None = None
    for reject in [x / 100 for x in range(50, 100, 5)]:
        for band in (0.0, 0.1, 0.2, 0.3):
            for pii_min in (0.3, 0.4, 0.5, 0.6, 0.7):
                policy = PolicySettings(profanity_reject=reject, profanity_review=max(0.0, reject - band),
                                        pii_min_score=pii_min)  # fmt: skip
                flagged = sum(1 for s in dev if s.item["hard_negative"] and predicted(s, policy)[1] != "approved")
                contact, financial = counts(dev, policy, "contact"), counts(dev, policy, "financial")
                pii = f1(*(a + b for a, b in zip(contact, financial, strict=True)))
                objective = f1(*counts(dev, policy, "profanity")) + pii - flagged
                accuracy = sum(predicted(s, policy)[1] == s.item["decision"] for s in dev) / len(dev)
                objective += accuracy / 10
                if best is None or objective > best[0] + 1e-9:
                    best = (objective, policy)
    if best is None:
        raise RuntimeError("no thresholds tried")
    return best[1]


def report(test: list[Scored], policy: PolicySettings) -> dict[str, Any]:
    lines: dict[str, Any] = {}
    for label in CLASSES:
        tp, fp, fn = counts(test, policy, label)
        precision, recall = tp / (tp + fp) if tp + fp else math.nan, tp / (tp + fn) if tp + fn else math.nan
        lines[label] = {
            "precision": precision, "precision_ci": wilson(tp, tp + fp), "recall": recall,
            "recall_ci": wilson(tp, tp + fn), "f1": f1(tp, fp, fn), "support": tp + fn,
        }  # fmt: skip
    structured = [s for s in test if {"contact", "financial"} & set(s.item["labels"])]
    hits = sum(1 for s in structured if {"contact", "financial"} & predicted(s, policy)[0] & set(s.item["labels"]))
    lines["structured_pii_recall"] = (hits / len(structured), wilson(hits, len(structured)))
    negatives = [s for s in test if s.item["hard_negative"]]
    lines["hard_negatives_flagged"] = [s.item["text"] for s in negatives if predicted(s, policy)[1] != "approved"]
    lines["hard_negatives"] = len(negatives)
    right = sum(predicted(s, policy)[1] == s.item["decision"] for s in test)
    lines["decision_accuracy"] = (right / len(test), wilson(right, len(test)))
    lines["review_rate"] = sum(predicted(s, policy)[1] == "review" for s in test) / len(test)
    lines["mistakes"] = [(s.item["text"], s.item["decision"], predicted(s, policy)[1]) for s in test
                         if predicted(s, policy)[1] != s.item["decision"]]  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=Path, default=ROOT / "bench/data/moderation/items.jsonl")
    parser.add_argument("--show-mistakes", action="store_true")
    args = parser.parse_args()
    items = [json.loads(line) for line in args.items.read_text().splitlines() if line.strip()]
    dev_items, test_items = split(items)
    started = time.perf_counter()
    detector = ModelDetector(ModerationSettings())
    print(f"detectors loaded in {time.perf_counter() - started:.1f} s (presidio offline, alt-profanity-check)")
    dev = score_all(detector, dev_items)
    policy = tune(dev)
    print(f"{len(items)} items: dev {len(dev_items)} ({len({i['template'] for i in dev_items})} templates), "
          f"test {len(test_items)} ({len({i['template'] for i in test_items})} templates)")  # fmt: skip
    print(f"tuned on dev: profanity reject >= {policy.profanity_reject:.2f}, review >= {policy.profanity_review:.2f}, "
          f"PII min score {policy.pii_min_score:.2f}")  # fmt: skip
    started = time.perf_counter()
    test = score_all(detector, test_items)
    elapsed = time.perf_counter() - started
    lines = report(test, policy)
    print("\ntest set, per class (95% Wilson intervals):")
    for label in CLASSES:
        c = lines[label]
        print(f"  {label:<10} precision {c['precision']:.3f} [{c['precision_ci'][0]:.3f}, {c['precision_ci'][1]:.3f}]"
              f"  recall {c['recall']:.3f} [{c['recall_ci'][0]:.3f}, {c['recall_ci'][1]:.3f}]"
              f"  F1 {c['f1']:.3f}  (n={c['support']})")  # fmt: skip
    recall, ci = lines["structured_pii_recall"]
    print(
        f"  structured PII recall {recall:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  (goal >= {GOALS['structured PII recall']:g})"
    )
    print(f"  hard negatives flagged: {len(lines['hard_negatives_flagged'])} of {lines['hard_negatives']}  (goal 0)")
    for text in lines["hard_negatives_flagged"]:
        print(f"    - {text}")
    accuracy, ci = lines["decision_accuracy"]
    print(f"  decision accuracy {accuracy:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  (review rate {lines['review_rate']:.3f})")
    latencies = [s.seconds * 1000 for s in test]
    print(f"  latency per item: p50 {percentile(latencies, 0.5):.2f} ms, p95 {percentile(latencies, 0.95):.2f} ms, "
          f"max {max(latencies):.2f} ms  (goal p95 <= {GOALS['p95 ms']} ms)")  # fmt: skip
    print(f"  throughput: {len(test) / elapsed:.0f} items/s (one thread)")
    shipped = PolicySettings()
    accuracy, _ = report(test, shipped)["decision_accuracy"]
    shipped_lines = report(test, shipped)
    print(f"  with the shipped defaults (reject >= {shipped.profanity_reject}, review >= {shipped.profanity_review}): "
          f"decision accuracy {accuracy:.3f}, review rate {shipped_lines['review_rate']:.3f}, "
          f"profanity F1 {shipped_lines['profanity']['f1']:.3f}")  # fmt: skip
    if args.show_mistakes:
        print("\nmistakes (text, expected, decided):")
        for text, expected, got in lines["mistakes"]:
            print(f"  {expected:>9} -> {got:<9} {text}")


if __name__ == "__main__":
    main()
