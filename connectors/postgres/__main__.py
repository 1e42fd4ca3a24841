"""`python -m connectors.postgres`: run the PostgreSQL source until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from connectors.postgres.service import run_connector_resilient
from connectors.postgres.settings import PostgresConnectorSettings
from hub.settings import SettingsError, load_settings


async def _main(settings: PostgresConnectorSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_connector_resilient(settings, stop)


def main() -> int:
    try:
        settings = load_settings(PostgresConnectorSettings)
    except SettingsError as exc:
        logging.basicConfig(level="INFO")
        logging.getLogger("connectors.postgres").error("%s", exc)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
