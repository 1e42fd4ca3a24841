"""The detectors behind one port, loaded once per process, and the guarded runner the worker calls.

`Detector.detect` is synchronous and CPU-bound; `GuardedDetector` runs it in a thread with a timeout, behind a
circuit breaker, and counts every outcome. A detector that raises or overruns its timeout is a failure the
worker turns into the failure path (pending review, dead letter, retry).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Protocol

from moderation.breaker import CircuitBreaker
from moderation.model import Detection
from moderation.settings import ModerationSettings

log = logging.getLogger(__name__)


class Detector(Protocol):
    """Finds PII and scores profanity/toxicity in one text. May raise; must be safe to call from a thread."""

    def detect(self, text: str) -> Detection: ...


class DetectionFailed(RuntimeError):
    """A detector raised, overran its timeout, or the circuit breaker is open."""


class ModelDetector:
    """presidio (offline patterns), alt-profanity-check with normalisation, and detoxify when configured."""

    def __init__(self, settings: ModerationSettings) -> None:
        from moderation.pii import PiiDetector
        from moderation.profanity import ProfanityDetector

        self.pii = PiiDetector(min_score=settings.pii_min_score, spacy_model=settings.spacy_model)
        self.profanity = ProfanityDetector()
        self.toxicity = None
        if settings.detoxify_checkpoint is not None:
            from moderation.toxicity import DetoxifyModel

            # The settings refuse a checkpoint without its config directory and checksum.
            self.toxicity = DetoxifyModel(
                settings.detoxify_checkpoint, settings.detoxify_config_dir or Path(), settings.detoxify_sha256 or ""
            )
        # The first call of each recognizer loads lazy tables (phone metadata, suffix list): pay it now.
        self.detect("warm up: call 415-867-5309 or mail a@b.com, card 4111 1111 1111 1111")

    def detect(self, text: str) -> Detection:
        profanity = self.profanity.score(text)
        return Detection(
            pii=tuple(self.pii.find(text)),
            profanity=profanity.score,
            profanity_rule=profanity.rule,
            toxicity=None if self.toxicity is None else self.toxicity.score(text),
        )


class FaultyDetector:
    """Drills: the first `count` calls raise (`error`) or hang past any timeout (`hang`), then `inner` answers."""

    def __init__(self, inner: Detector, mode: str, count: int, hang_s: float = 30.0) -> None:
        self.inner, self.mode, self.remaining, self.hang_s = inner, mode, count, hang_s
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, inner: Detector, spec: str) -> FaultyDetector:
        mode, _, count = spec.partition(":")
        return cls(inner, mode, int(count))

    def detect(self, text: str) -> Detection:
        with self._lock:
            faulty = self.remaining > 0
            self.remaining -= int(faulty)
        if faulty and self.mode == "hang":
            time.sleep(self.hang_s)
        if faulty:
            raise RuntimeError(f"injected detector fault ({self.mode})")
        return self.inner.detect(text)


class GuardedDetector:
    """Timeout, circuit breaker and counters around a detector; `detect` raises only `DetectionFailed`."""

    def __init__(
        self, detector: Detector, *, timeout_s: float, breaker: CircuitBreaker, counters: Counter[str] | None = None
    ) -> None:
        self.detector = detector
        self.timeout_s = timeout_s
        self.breaker = breaker
        self.counters: Counter[str] = counters if counters is not None else Counter()

    async def detect(self, text: str) -> Detection:
        from moderation.breaker import CircuitOpen

        try:
            self.breaker.before_call()
        except CircuitOpen as exc:
            self.counters["moderation_circuit_rejected"] += 1
            raise DetectionFailed(str(exc)) from exc
        started = time.perf_counter()
        try:
            detection = await asyncio.wait_for(self._in_thread(text), self.timeout_s)
        except TimeoutError as exc:
            self._failed("moderation_detector_timeouts")
            raise DetectionFailed(f"detector timed out after {self.timeout_s:g}s") from exc
        except Exception as exc:  # noqa: BLE001 - any detector error takes the failure path
            self._failed("moderation_detector_errors")
            raise DetectionFailed(f"detector error: {type(exc).__name__}: {exc}") from exc
        self.breaker.record_success()
        self.counters["moderation_detections"] += 1
        self.counters["moderation_detect_ms"] += int((time.perf_counter() - started) * 1000)
        return detection

    def _failed(self, counter: str) -> None:
        self.counters[counter] += 1
        was_open = self.breaker.opened_at is not None
        self.breaker.record_failure()
        if self.breaker.opened_at is not None and not was_open:
            self.counters["moderation_circuit_opened"] += 1
            log.warning("moderation circuit opened after %d failures", self.breaker.consecutive_failures)

    def _in_thread(self, text: str) -> asyncio.Future[Detection]:
        """The detector on a daemon thread of its own: a hung call is abandoned at the timeout and never holds up
        the worker's shutdown (a pool's threads are joined at exit)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Detection] = loop.create_future()

        def settle(outcome: Detection | BaseException) -> None:
            if future.done():
                return  # timed out meanwhile
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

        def work() -> None:
            outcome: Detection | BaseException
            try:
                outcome = self.detector.detect(text)
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                outcome = exc
            try:
                loop.call_soon_threadsafe(settle, outcome)
            except RuntimeError:
                log.info("detector finished after its loop closed")

        threading.Thread(target=work, name="detector", daemon=True).start()
        return future


def load_detector(settings: ModerationSettings) -> Detector:
    """The real detectors (once per process), wrapped for a drill when `fault_injection` is set."""
    detector: Detector = ModelDetector(settings)
    if settings.fault_injection:
        log.warning("fault injection is on: %s", settings.fault_injection)
        detector = FaultyDetector.from_spec(detector, settings.fault_injection)
    return detector
