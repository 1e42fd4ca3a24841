"""The worker's metrics page: counters and latency histograms in Prometheus' text format."""

from __future__ import annotations

from streams.metrics import WorkerMetrics


def test_worker_histograms_render_cumulative_prometheus_buckets() -> None:
    worker_metrics = WorkerMetrics()
    worker_metrics.observe("index_lag", [0.01, 0.2, 0.2, 7.0, 100.0])

    lines = worker_metrics.render().splitlines()

    assert 'auction_hub_index_lag_seconds_bucket{le="0.025"} 1' in lines
    assert 'auction_hub_index_lag_seconds_bucket{le="0.2"} 3' in lines
    assert 'auction_hub_index_lag_seconds_bucket{le="10.0"} 4' in lines
    assert 'auction_hub_index_lag_seconds_bucket{le="+Inf"} 5' in lines
    assert "auction_hub_index_lag_seconds_count 5" in lines
    assert "auction_hub_index_lag_seconds_sum 107.410000" in lines
