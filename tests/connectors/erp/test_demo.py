"""What `auction-hub up` does to the ERP stand-in before its demo starts: the yard's first stock, a fresh capture."""

from __future__ import annotations

from connectors.erp.dialects import ErpDsn, connect
from connectors.erp.simulator import load_stock, seed_stock
from connectors.erp.source import SqlErpSource, StoredState

VINS = ["1HGCM82633A004352", "1FTEW1EP5MKD12345", "5YJ3E1EA7KF317000"]


def test_seed_stock_stocks_the_given_vins_once(erp_dsn: ErpDsn) -> None:
    assert seed_stock(erp_dsn, VINS, seed=1) == 3
    assert seed_stock(erp_dsn, ["2T1BURHE0JC012345"], seed=1) == 0  # the ERP holds stock already: left alone
    connection = connect(erp_dsn)
    try:
        stock = load_stock(connection)
        rows = connection.execute("SELECT location, arrival_date, cost FROM stock_items").fetchall()
    finally:
        connection.close()
    assert sorted(item.vin for item in stock.values()) == sorted(VINS)
    assert {item.status for item in stock.values()} == {"IN_STOCK"}
    assert all(location and arrival and cost for location, arrival, cost in rows)


def test_forget_state_makes_the_next_start_snapshot(erp_dsn: ErpDsn) -> None:
    source = SqlErpSource(erp_dsn)
    try:
        source.save_state("demo", StoredState(42, [[40.0, 41.0, 1.0]]))
        source.save_state("other", StoredState(7, []))
        assert source.forget_state("demo") is True
        assert source.load_state("demo") is None
        assert source.load_state("other") == StoredState(7, [])
        assert source.forget_state("demo") is False
    finally:
        source.close()
