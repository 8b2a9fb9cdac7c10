"""What a fresh worker's /metrics says before anything happened: unknown is NaN, the build is named."""

from __future__ import annotations

import math

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from churnwatch.http.metrics import Metrics
from churnwatch.version import product_version


def _samples(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_model_quality_reads_nan_until_the_first_label_not_zero() -> None:
    found = _samples(Metrics())
    for name in ("churnwatch_model_roc_auc", "churnwatch_model_log_loss", "churnwatch_model_recent_roc_auc",
                 "churnwatch_model_recent_roc_auc_bound", "churnwatch_model_learned_until_seconds"):
        assert math.isnan(found[name][0][1]), name


def test_the_models_version_reads_as_the_day_it_learned_everything_before() -> None:
    metrics = Metrics()
    metrics.model({"learned_until": "2026-03-02T00:00:00+00:00", "waiting": 7})
    found = _samples(metrics)
    assert found["churnwatch_model_learned_until_seconds"][0][1] == 1772409600
    assert found["churnwatch_model_waiting_records"][0][1] == 7


def test_process_and_build_metrics_are_served_and_no_created_series() -> None:
    metrics = Metrics()
    metrics.events.labels("usage", "applied").inc()
    found = _samples(metrics)
    assert "process_cpu_seconds_total" in found and "process_resident_memory_bytes" in found
    assert "python_info" in found
    (labels, value), = found["churnwatch_build_info"]
    assert value == 1 and labels["version"] == product_version() != "unknown"
    assert labels["faust"] != "unknown" and labels["river"] != "unknown"
    assert not [name for name in found if name.endswith("_created")]
