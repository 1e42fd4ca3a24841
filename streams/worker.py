"""Runs the indexer worker: topics, the search index writer, and the Faust app."""

from __future__ import annotations

import asyncio
import gc
import logging

import faust

from connectors.search.factory import create_search_index
from hub.serve import freeze_startup_objects
from hub.settings import load_settings
from hub.topics import ensure_topics
from streams.app import IndexerApp
from streams.erp_agent import ErpStreamSettings
from streams.questions import QnaStreamSettings
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)

# The agents allocate in batches: a batch's thousands of decoded records live about a second, long enough to be
# promoted, so with Python's default thresholds (700, 10, 10) a 300,000-vehicle snapshot ran ~90 full collections
# over a ~700 MB heap, 9-12 s of its 66-73 s. With these: ~10 young collections and one full one (under 1 s), and
# the snapshot ~10% faster at the same peak memory (README, Performance).
BATCH_GC_THRESHOLDS = (100_000, 50, 1_000)


def consumed_topics(settings: WorkerSettings) -> list[str]:
    erp = load_settings(ErpStreamSettings)
    return [
        settings.change_topic("vehicles"),
        settings.change_topic("dealers"),
        settings.vehicle_refresh_topic,
        settings.dealer_links_topic,
        settings.dead_letter_topic,
        settings.auction_bids_topic,
        settings.change_topic("questions"),
        settings.change_topic("answers"),
        load_settings(QnaStreamSettings).qna_refresh_topic,
        # Created here too, so a fresh broker never first sees them when the worker's first record needs them.
        erp.erp_topic,
        erp.erp_vin_links_topic,
        erp.erp_inventory_refresh_topic,
    ]


def run_worker(settings: WorkerSettings) -> None:
    """Blocks until SIGINT/SIGTERM; the app closes the index writer once its agents stopped."""
    bootstrap = settings.require_bootstrap()
    asyncio.run(ensure_topics(bootstrap, consumed_topics(settings), settings.topic_partitions))
    indexer_app = IndexerApp(settings, create_search_index(settings, writer=True))
    worker = faust.Worker(indexer_app.app, loglevel=settings.log_level.lower(), redirect_stdouts=False)
    # Faust's terminal spinner turns the root logger to DEBUG so it can spin on every record, which makes
    # aiokafka build a log record per produced message: a large share of the worker's CPU.
    worker.spinner = None
    freeze_startup_objects()  # full collections would walk every imported module's objects, pausing the agents
    gc.set_threshold(*BATCH_GC_THRESHOLDS)
    worker.execute_from_commandline()
