"""`auction-hub up`: prepare PostgreSQL, start the embedded broker, load demo data, supervise the hub."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from pydantic import Field

from hub.broker import EmbeddedBroker, free_port, wait_for_port
from hub.embedded_redis import EmbeddedRedis, RedisStartError
from hub.settings import DatabaseSettings, IndexSettings, KafkaSettings, load_settings
from hub.supervisor import ChildSpec, Supervisor
from marketplace.migrate import maintenance_url

log = logging.getLogger(__name__)


class UpSettings(DatabaseSettings, KafkaSettings, IndexSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    metrics_port: int = Field(default=6066, ge=0, le=65535)
    broker_port: int = Field(default=9092, ge=1, le=65535)
    state_dir: Path = Path("var")
    erp_demo: bool = Field(default=True, description="ERP stand-in, ERP connector and erp-sim in the demo.")
    erp_dsn: str | None = Field(default=None, description="The ERP; default: `<database>_erp` beside the marketplace.")
    erp_health_port: int = Field(default=8086, ge=1, le=65535)
    erp_sim_rate: float = Field(default=2.0, ge=0, le=1000, description="erp-sim changes/s; 0: no simulator.")
    erp_demo_stock: int = Field(default=200, ge=0, le=20_000, description="Demo vehicles stocked in an empty ERP.")
    redis_url: str | None = Field(
        default=None,
        description="Live bidding's Redis; unset: `up` runs its own redis-server (AOF, fsync always) in state_dir.",
    )
    redis_port: int = Field(default=6390, ge=1, le=65535, description="Port of the redis-server `up` runs.")


class PostgresNotReady(RuntimeError):
    pass


def ensure_logical_wal(database_url: str) -> None:
    """Logical decoding needs wal_level=logical, which only a restart of the cluster applies."""
    with psycopg.connect(maintenance_url(database_url), autocommit=True) as conn:
        row = conn.execute("SHOW wal_level").fetchone()
        level = row[0] if row else "unknown"
        if level == "logical":
            return
        conn.execute("ALTER SYSTEM SET wal_level = logical")
    print(
        f"PostgreSQL runs with wal_level={level}; change data capture needs wal_level=logical.\n"
        "It is now set with ALTER SYSTEM; PostgreSQL must restart for it to take effect.",
        flush=True,
    )
    host = urlsplit(database_url).hostname or "localhost"
    clusters = Path("/etc/postgresql")
    if (
        host in {"127.0.0.1", "localhost", "::1"}
        and shutil.which("pg_ctlcluster")
        and os.geteuid() == 0
        and clusters.is_dir()
    ):
        version = sorted(p.name for p in clusters.iterdir())[-1]
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]
        print(f"Restarting the local cluster: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True)  # noqa: S603
        _wait_for_postgres(database_url)
        return
    raise PostgresNotReady(
        "restart PostgreSQL (e.g. `sudo pg_ctlcluster --skip-systemctl-redirect <version> main restart` "
        "or `sudo systemctl restart postgresql`), then run `make up` again"
    )


def _wait_for_postgres(database_url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(maintenance_url(database_url), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def local_jwt_secret(state_dir: Path) -> str:
    """The access-token key of this machine's hub: generated once, kept in the state directory (mode 600)."""
    path = state_dir / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret


def _nchan_children(env: dict[str, str], settings: UpSettings, showcase: int | None) -> list[ChildSpec]:
    """nginx+nchan and the hub's publisher, only when AUCTION_HUB_LIVE_STREAM=nchan (native SSE needs neither)."""
    from bidding.settings import NchanSettings

    nchan = load_settings(NchanSettings)
    if nchan.live_stream != "nchan":
        return []
    nchan_env = {
        **env,
        "AUCTION_HUB_NCHAN_API_UPSTREAM": f"{settings.api_host}:{settings.api_port}",
        "AUCTION_HUB_NCHAN_STATE_DIR": str((settings.state_dir / "nchan").resolve()),
    }
    print(f"  live page (nchan) http://{nchan.nchan_listen}/live/auctions/{showcase or 1}\n", flush=True)
    return [
        ChildSpec("nchan", _cli("nchan", "serve"), nchan_env),
        ChildSpec("nchan-publisher", _cli("nchan", "publish"), nchan_env),
    ]


def _erp_children(env: dict[str, str], settings: UpSettings, *, fresh_broker: bool) -> list[ChildSpec]:
    """The ERP demo (AUCTION_HUB_ERP_DEMO=false: none): the stand-in database with the ERP DDL and stock for the
    first demo vehicles, the ERP connector, and erp-sim at a gentle rate on the marketplace's VINs."""
    if not settings.erp_demo:
        return []
    from connectors.erp.dialects import ErpDsn, ErpUnavailable, prepare_erp, standin_beside
    from connectors.erp.settings import ErpConnectorSettings
    from connectors.erp.simulator import marketplace_vins, seed_stock
    from connectors.erp.source import SqlErpSource

    dsn = ErpDsn.parse(settings.erp_dsn) if settings.erp_dsn else standin_beside(settings.database_url)
    erp_env = {**env, "AUCTION_HUB_ERP_DSN": dsn.url(), "AUCTION_HUB_ERP_HEALTH_PORT": str(settings.erp_health_port)}
    try:
        prepare_erp(dsn)
        seed_stock(dsn, marketplace_vins(settings.database_url, limit=settings.erp_demo_stock))
        if fresh_broker:  # the embedded broker starts empty: the connector snapshots the ERP again
            source = SqlErpSource(dsn)
            try:
                source.forget_state(load_settings(ErpConnectorSettings).erp_capture_name)
            finally:
                source.close()
    except ErpUnavailable as exc:
        log.warning("ERP demo: %s (the connector reports it on its health URL and retries)", exc)
    sim = f", erp-sim {settings.erp_sim_rate:g} changes/s" if settings.erp_sim_rate > 0 else ""
    print(
        f"  ERP connector     http://127.0.0.1:{settings.erp_health_port}/health"
        f" (stand-in {dsn.dialect}://{dsn.host}:{dsn.port}/{dsn.database}{sim}; AUCTION_HUB_ERP_DEMO=false: off)\n"
        f"  ERP inventory     http://{settings.api_host}:{settings.api_port}/api/v1/vehicles/1 (its `inventory`)\n",
        flush=True,
    )
    children = [ChildSpec("erp-connector", _cli("connect", "erp"), erp_env)]
    if settings.erp_sim_rate > 0:
        children.append(ChildSpec("erp-sim", _cli("erp-sim", "--rate", f"{settings.erp_sim_rate:g}"), erp_env))
    return children


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub.cli", *args]


def run_up(*, demo_vehicles: int, demo_dealers: int) -> int:
    from marketplace.auction_store import showcase_auction_id
    from marketplace.demo_data import load_demo_data
    from marketplace.migrate import apply_migrations, ensure_database

    settings = load_settings(UpSettings)
    try:
        ensure_logical_wal(settings.database_url)
    except PostgresNotReady as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ensure_database(settings.database_url)
    apply_migrations(settings.database_url)
    summary = load_demo_data(settings.database_url, dealers=demo_dealers, vehicles=demo_vehicles)
    log.info("demo data: %s", summary)

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    broker: EmbeddedBroker | None = None
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        port = settings.broker_port if not wait_for_port("127.0.0.1", settings.broker_port, 0.2) else free_port()
        broker = EmbeddedBroker(port=port, log_path=settings.state_dir / "tansu.log").start()
        bootstrap = broker.bootstrap_servers
    redis: EmbeddedRedis | None = None
    redis_url = settings.redis_url
    if not redis_url:
        port = settings.redis_port if not wait_for_port("127.0.0.1", settings.redis_port, 0.2) else free_port()
        try:
            redis = EmbeddedRedis(settings.state_dir / "redis", port=port).start()
        except RedisStartError as exc:
            print(f"error: live bidding needs Redis: {exc}; or set AUCTION_HUB_REDIS_URL", file=sys.stderr)
            if broker:
                broker.stop()
            return 2
        redis_url = redis.url
    env = {
        **os.environ,
        "AUCTION_HUB_REDIS_URL": redis_url,
        "AUCTION_HUB_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUCTION_HUB_DATABASE_URL": settings.database_url,
        "AUCTION_HUB_INDEX_PATH": str(settings.index_path.resolve()),
        "AUCTION_HUB_API_PORT": str(settings.api_port),
        "AUCTION_HUB_METRICS_PORT": str(settings.metrics_port),
        "AUCTION_HUB_JWT_SECRET": os.environ.get("AUCTION_HUB_JWT_SECRET") or local_jwt_secret(settings.state_dir),
    }
    api = f"http://{settings.api_host}:{settings.api_port}"
    showcase = showcase_auction_id(settings.database_url)
    live_page = (
        f"{api}/live/auctions/{showcase}" if showcase is not None else "(no auction yet: create one as a dealer)"
    )
    print(
        "\nauction-hub is starting:\n"
        f"  search page       {api}/search?q=camry\n"
        f"  moderation page   {api}/moderation\n"
        f"  dealer desk       {api}/dealer\n"
        f"  my bids           {api}/my-bids\n"
        f"  faceted search    {api}/api/v1/vehicles?q=camry&sort=price\n"
        f"  vehicle detail    {api}/api/v1/vehicles/1\n"
        f"  API docs          {api}/docs\n"
        f"  live auction page {live_page}\n"
        f"  health            {api}/health\n"
        f"  worker metrics    http://127.0.0.1:{settings.metrics_port}/metrics\n"
        f"  Kafka bootstrap   {bootstrap}{' (embedded tansu)' if broker else ''}\n"
        f"  Redis (bidding)   {redis_url}{' (embedded, AOF appendfsync always)' if redis else ''}\n"
        f"  PostgreSQL        {settings.database_url}\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )
    children = [
        ChildSpec("connector", _cli("connect", "postgres"), env),
        ChildSpec("worker", _cli("worker"), env),
        ChildSpec("moderation", _cli("moderation"), env),  # Q&A verdicts and the dead-letter retries
        ChildSpec("api", _cli("api", "--host", settings.api_host, "--port", str(settings.api_port)), env),
        ChildSpec("bids", _cli("bids", "all"), env),  # bids to PostgreSQL and Kafka; lots opened/closed on time
    ]
    children += _nchan_children(env, settings, showcase)
    children += _erp_children(env, settings, fresh_broker=broker is not None)
    try:
        Supervisor(children).run()
    finally:
        if broker:
            broker.stop()
        if redis:
            redis.stop()
    return 0
