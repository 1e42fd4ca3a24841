"""`auction-hub`: one console script, one subcommand per process or task."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence

import uvloop

from hub.settings import SettingsError, load_settings

log = logging.getLogger("auction_hub")


def _configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_migrate(_: argparse.Namespace) -> int:
    from hub.settings import DatabaseSettings
    from marketplace.migrate import apply_migrations, ensure_database

    settings = load_settings(DatabaseSettings)
    if ensure_database(settings.database_url):
        log.info("created database %s", settings.database_url.rsplit("/", 1)[-1])
    applied = apply_migrations(settings.database_url)
    log.info("migrations applied: %s", ", ".join(applied) or "none (up to date)")
    return 0


def cmd_create_admin(args: argparse.Namespace) -> int:
    import getpass
    import os

    from hub.settings import DatabaseSettings
    from marketplace.admins import AdminError, create_admin

    settings = load_settings(DatabaseSettings)
    password = os.environ.get("AUCTION_HUB_ADMIN_PASSWORD") or getpass.getpass(f"password for {args.email}: ")
    try:
        user_id, created = create_admin(settings.database_url, args.email, password, args.name)
    except AdminError as exc:
        log.error("%s", exc)
        return 2
    log.info("%s admin %s (user %d)", "created" if created else "promoted", args.email, user_id)
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from hub.settings import DatabaseSettings
    from marketplace.demo_data import load_demo_data

    settings = load_settings(DatabaseSettings)
    summary = load_demo_data(settings.database_url, dealers=args.dealers, vehicles=args.vehicles)
    log.info("demo data: %s", summary)
    return 0


def _run_until_signal(run: Callable[[asyncio.Event], object]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(stop)  # type: ignore[misc]

    asyncio.run(main())


def cmd_connect_erp(_: argparse.Namespace) -> int:
    from connectors.erp.service import run_erp_connector
    from connectors.erp.settings import ErpConnectorSettings

    settings = load_settings(ErpConnectorSettings)
    _run_until_signal(lambda stop: run_erp_connector(settings, stop))
    return 0


def cmd_erp_sim(args: argparse.Namespace) -> int:
    from connectors.erp.dialects import prepare_erp
    from connectors.erp.settings import ErpSimSettings
    from connectors.erp.simulator import marketplace_vins, run_simulation

    settings = load_settings(ErpSimSettings)
    if prepare_erp(settings.dsn):
        log.info("installed the ERP schema (stock_items, stock_changes, triggers) in %s", settings.dsn.url())
    vins = [] if args.generated_vins else marketplace_vins(settings.database_url)
    committed = run_simulation(settings.dsn, rate=args.rate, duration_s=args.duration, vins=vins, seed=args.seed,
                               changes_per_txn=args.changes_per_txn)  # fmt: skip
    log.info("erp-sim: %d changes committed", committed)
    return 0


def cmd_connect(args: argparse.Namespace, *, force_snapshot: bool = False) -> int:
    if args.source == "erp":
        return cmd_connect_erp(args)
    if args.source != "postgres":
        log.error("unknown source %r: the connectors are: postgres, erp", args.source)
        return 2
    from connectors.postgres.service import run_connector_resilient
    from connectors.postgres.settings import PostgresConnectorSettings

    settings = load_settings(PostgresConnectorSettings)
    snapshot = force_snapshot or bool(getattr(args, "snapshot", False))
    _run_until_signal(lambda stop: run_connector_resilient(settings, stop, force_snapshot=snapshot))
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    args.source = "postgres"
    return cmd_connect(args, force_snapshot=True)


def cmd_worker(_: argparse.Namespace) -> int:
    from streams.settings import WorkerSettings
    from streams.worker import run_worker

    run_worker(load_settings(WorkerSettings))
    return 0


def cmd_moderation(_: argparse.Namespace) -> int:
    from moderation.settings import ModerationSettings
    from streams.moderation import run_moderation_worker

    run_moderation_worker(load_settings(ModerationSettings))
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from hub.serve import serve_api
    from search_api.settings import ApiSettings

    settings = load_settings(ApiSettings)  # fail fast, naming the variable, before any worker starts
    serve_api(args.host or settings.api_host, args.port or settings.api_port, args.workers)
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    from hub.reindex import ReindexError, ReindexSettings, run_reindex

    settings = load_settings(ReindexSettings)
    if settings.index_backend != "tantivy":
        log.error(
            "auction-hub reindex is not supported yet for Elasticsearch (alias swap planned); "
            "AUCTION_HUB_INDEX_BACKEND=%s",
            settings.index_backend,
        )
        return 2
    try:
        summary = run_reindex(settings, ack_timeout_s=args.ack_timeout)
    except ReindexError as exc:
        log.error("reindex failed: %s", exc)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        log.error("reindex interrupted; the new version was discarded")
        return 130
    print(summary.describe())  # noqa: T201 - the command's result
    return 0


def cmd_nchan(args: argparse.Namespace) -> int:
    from bidding.nchan import exec_nginx, run_publisher
    from bidding.settings import BiddingSettings, NchanSettings

    settings = load_settings(NchanSettings)
    if args.role == "serve":
        exec_nginx(settings)
        return 1
    redis_url = load_settings(BiddingSettings).redis_url
    _run_until_signal(lambda stop: run_publisher(redis_url, settings, stop))
    return 0


def cmd_bids(args: argparse.Namespace) -> int:
    from bidding.lifecycle import run_lifecycle, run_persister, run_scheduler
    from bidding.settings import BidLifecycleSettings

    settings = load_settings(BidLifecycleSettings)
    run = {"persist": run_persister, "schedule": run_scheduler, "all": run_lifecycle}[args.role]
    _run_until_signal(lambda stop: run(settings, stop))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from hub.up import run_up

    return run_up(demo_vehicles=args.demo_vehicles, demo_dealers=args.demo_dealers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auction-hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole hub on this machine (embedded broker and index)")
    up.add_argument("--demo-vehicles", type=int, default=5_000, help="vehicles to generate when the db is empty")
    up.add_argument("--demo-dealers", type=int, default=200)
    up.set_defaults(handler=cmd_up)

    commands.add_parser("migrate", help="create the database if needed and apply migrations").set_defaults(
        handler=cmd_migrate
    )

    admin = commands.add_parser("create-admin", help="create an admin account (password: prompt or env)")
    admin.add_argument("email")
    admin.add_argument("--name", default="Administrator")
    admin.set_defaults(handler=cmd_create_admin)

    demo = commands.add_parser("demo-data", help="load realistic demo data if the database is empty")
    demo.add_argument("--vehicles", type=int, default=5_000)
    demo.add_argument("--dealers", type=int, default=200)
    demo.set_defaults(handler=cmd_demo_data)

    connect = commands.add_parser("connect", help="run a source connector")
    connect.add_argument("source", choices=["postgres", "erp"])
    connect.add_argument("--snapshot", action="store_true", help="take a new initial snapshot first")
    connect.set_defaults(handler=cmd_connect)

    commands.add_parser("snapshot", help="re-snapshot PostgreSQL into the change topics, then stream").set_defaults(
        handler=cmd_snapshot
    )
    commands.add_parser("worker", help="run the Faust stream worker (vehicle indexer)").set_defaults(handler=cmd_worker)
    commands.add_parser(
        "moderation", help="run the Q&A moderation worker (detectors, dead-letter retries)"
    ).set_defaults(handler=cmd_moderation)

    reindex = commands.add_parser(
        "reindex", help="rebuild the search index from PostgreSQL while streaming goes on, then swap it in"
    )
    reindex.add_argument(
        "--ack-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the worker to answer; without an answer and with its lock free, build alone",
    )
    reindex.set_defaults(handler=cmd_reindex)

    bids = commands.add_parser(
        "bids", help="live bidding's lifecycle: persist bids (Redis -> PostgreSQL + Kafka), open/close lots on time"
    )
    bids.add_argument("role", choices=["persist", "schedule", "all"], help="`all`: both in one process")
    bids.set_defaults(handler=cmd_bids)

    erp_sim = commands.add_parser("erp-sim", help="realistic ERP stock activity against the ERP (or stand-in) database")
    erp_sim.add_argument("--rate", type=float, default=5.0, help="changes per second")
    erp_sim.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    erp_sim.add_argument("--changes-per-txn", type=int, default=1)
    erp_sim.add_argument("--seed", type=int, default=None)
    erp_sim.add_argument("--generated-vins", action="store_true", help="do not stock the marketplace's VINs")
    erp_sim.set_defaults(handler=cmd_erp_sim)

    api = commands.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (e.g. one per core)")
    api.set_defaults(handler=cmd_api)

    nchan = commands.add_parser("nchan", help="the fan-out tier: nginx+nchan (serve) or the hub's publisher to it")
    nchan.add_argument("role", choices=["serve", "publish"])
    nchan.set_defaults(handler=cmd_nchan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    # Every process of the hub runs on uvloop (uvicorn would pick it anyway): aiokafka's socket writes, Faust's
    # per-record callbacks and the connectors' I/O cost less on libuv's loop. Set before any loop exists, so
    # asyncio.run, Faust and its consumer thread all create uvloop loops.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        return int(args.handler(args))
    except SettingsError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C, or `up` stopping its children, at a moment the command has no handler of its own yet (still
        # importing, say) or after one shut it down and raised it again (uvicorn): a stop, not a fault.
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
