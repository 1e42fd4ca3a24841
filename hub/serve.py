"""Serving the API process with one or several uvicorn workers."""

from __future__ import annotations

import gc
import socket

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from hub.settings import load_settings


def app_from_environment() -> FastAPI:
    """uvicorn's factory in every worker process: the app of the settings in the environment."""
    from hub.api import create_app
    from search_api.settings import ApiSettings

    app = create_app(load_settings(ApiSettings))
    freeze_startup_objects()
    gc.set_threshold(*API_GC_THRESHOLDS)
    return app


# Python's default (700, 10, 10) promotes the objects of requests and SSE deliveries in flight at each young
# collection; with 2,000 SSE connections (~200 tracked objects each) the full collections this set off took 230-340 ms
# each, 18 in one bench (every bid -> screen tail past 100 ms). A young generation of 20,000 lets them die young:
# no full collection in the same bench; p99 (median of 3 runs) 42.8 and 53.5 ms in two benches vs 127-166 ms before
# (README, Performance).
API_GC_THRESHOLDS = (20_000, 10, 10)


def freeze_startup_objects() -> None:
    """Move what importing and building the app allocated (~120,000 objects) out of the garbage collector's reach.

    Under load, objects of in-flight requests get promoted and trigger full collections; each one walked every
    object of every imported module, 50-100 ms during which no request moved (the p95 of POST /cars). Frozen
    objects are never collected, which is what module-level objects are anyway.
    """
    gc.collect()
    gc.freeze()


def serve_api(host: str, port: int, workers: int) -> None:
    config = uvicorn.Config(
        "hub.serve:app_from_environment", factory=True, host=host, port=port, workers=workers,
        log_level="info", access_log=False,
    )  # fmt: skip
    if workers == 1:
        uvicorn.Server(config).run()
        return
    # uvicorn 0.54 binds the socket of `--workers N` without a protocol number (Kludex/uvicorn#3149): asyncio then
    # skips TCP_NODELAY on accepted connections and every keep-alive request after the first waits ~40 ms for the
    # client's delayed ACK. A socket made with IPPROTO_TCP keeps TCP_NODELAY, as in single-process mode.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    Multiprocess(config, sockets=[sock]).run()
