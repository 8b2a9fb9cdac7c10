"""The operations files: Prometheus config and alert rules (promtool), the Grafana
dashboard (every query names a metric the worker exports), the compose stack and
the Dockerfile (structure; this machine has no Docker engine to run them)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from churnwatch.http.metrics import Metrics
from churnwatch.dev.kafka_broker import KafkaBroker
from churnwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
METRIC = re.compile(r"\b(churnwatch_[a-z_]+|up)\b")


def exported_names() -> set[str]:
    """Every series name the worker's registry can expose."""
    names: set[str] = {"up"}  # Prometheus' own, per scrape target
    for metric in vars(Metrics()).values():
        if isinstance(metric, Counter):
            names.add(metric._name + "_total")
        elif isinstance(metric, Histogram):
            names |= {metric._name + suffix for suffix in ("_bucket", "_count", "_sum")}
        elif isinstance(metric, Gauge):
            names.add(metric._name)
    return names


def debian_tool(command: str, package: str) -> str:
    """The command, from Debian's package, installed where we can (as root with apt); else the test is skipped."""
    found = shutil.which(command)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                       env=env, capture_output=True, timeout=600)
        found = shutil.which(command)
    if found is None:
        pytest.skip(f"{command} not available: install Debian's '{package}' package to check the ops files")
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    return debian_tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return debian_tool("amtool", "prometheus-alertmanager")


def _passes(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_prometheus_config_and_rules_pass_promtool_and_their_tests(promtool: str) -> None:
    """Checked, and every alert rule tested: it fires when it should and stays quiet when it should not."""
    _passes([promtool, "check", "config", str(OPS / "prometheus/prometheus.yml")])
    _passes([promtool, "check", "rules", str(OPS / "prometheus/alerts.yml")])
    _passes([promtool, "test", "rules", str(OPS / "prometheus/alerts_test.yml")])
    tests = yaml.safe_load((OPS / "prometheus/alerts_test.yml").read_text())["tests"]
    checked = [case for test in tests for case in test["alert_rule_test"]]
    rules = yaml.safe_load((OPS / "prometheus/alerts.yml").read_text())["groups"][0]["rules"]
    for rule in rules:
        cases = [case for case in checked if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in cases), f"{rule['alert']}: no test where it fires"
        assert any(not case["exp_alerts"] for case in cases), f"{rule['alert']}: no test where it stays quiet"


def test_the_alertmanager_config_passes_amtool_and_routes_every_alert_to_a_receiver(amtool: str) -> None:
    config = OPS / "alertmanager/alertmanager.yml"
    _passes([amtool, "check-config", str(config)])
    rules = yaml.safe_load((OPS / "prometheus/alerts.yml").read_text())["groups"][0]["rules"]
    for rule in rules:
        labels = [f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in rule["labels"].items())]
        routed = subprocess.run([amtool, "config", "routes", "test", "--config.file", str(config), *labels],
                                capture_output=True, text=True, timeout=60)
        assert routed.returncode == 0 and routed.stdout.strip() == "operations", (rule["alert"], routed)
    prometheus = yaml.safe_load((OPS / "prometheus/prometheus.yml").read_text())
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_alert_rules_cover_the_operational_risks_with_exported_metrics() -> None:
    rules = yaml.safe_load((OPS / "prometheus/alerts.yml").read_text())["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "ChurnwatchWorkerDown", "ChurnwatchNoWorkers", "ChurnwatchWorkersLost", "ChurnwatchConsumerLagGrowing",
        "ChurnwatchDeadLettersRising", "ChurnwatchNoEvents", "ChurnwatchModelAucFalling",
        "ChurnwatchRulePrecisionLow"}
    names = exported_names()
    for rule in rules:
        used = set(METRIC.findall(rule["expr"]))
        assert used and used <= names, (rule["alert"], used - names)
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"] and rule["for"]


def test_the_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((OPS / "grafana/dashboards/churnwatch.json").read_text())
    names = exported_names()
    titles = []
    for panel in dashboard["panels"]:
        titles.append(panel["title"])
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            used = set(METRIC.findall(target["expr"])) | ({"ALERTS"} if "ALERTS{" in target["expr"] else set())
            assert used and used <= names | {"ALERTS"}, (panel["title"], used - names)
    wanted = ("Events processed", "Rejected", "Alerts opened", "by severity", "Processing time", "Event age",
              "Consumer lag", "Model ROC AUC", "Customers at risk", "Rule precision", "Churners warned",
              "lead", "Workers up", "Firing alerts")
    for word in wanted:
        assert any(word in title for title in titles), word
    provider = yaml.safe_load((OPS / "grafana/provisioning/dashboards/churnwatch.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    (variable,) = dashboard["templating"]["list"]  # the data source is chosen, not a uid written in the file
    assert (variable["name"], variable["type"], variable["query"]) == ("datasource", "datasource", "prometheus")
    auc = next(panel for panel in dashboard["panels"] if panel["title"].startswith("Model ROC AUC"))
    assert auc["fieldConfig"]["defaults"]["unit"] == "none"  # a number from 0 to 1, not a percentage


def test_the_compose_stack_is_complete() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "topics", "worker", "prometheus", "alertmanager", "alert-sink", "grafana"}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "healthcheck" in kafka and any("kafka-data" in v for v in kafka["volumes"])
    topics = services["topics"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    created = re.search(r"for topic in ([^;]+);", topics["command"][0]).group(1).split()
    defaults = Settings()
    assert set(created) == {*defaults.co_partitioned_topics, defaults.topic_alerts, defaults.topic_dead_letters}
    labels = re.search(r"--topic (\S+) --partitions 1 .*retention\.ms=(\d+)", topics["command"][0])
    assert labels and labels.group(1) == defaults.topic_labels
    assert int(labels.group(2)) == defaults.labels_retention_days * 86_400_000
    worker = services["worker"]
    assert worker["build"] == "." and worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert "readyz" in " ".join(worker["healthcheck"]["test"])
    assert worker["environment"]["CHURNWATCH_PARTITIONS"] == topics["environment"]["PARTITIONS"]
    # A range, so scaled replicas do not clash (Prometheus finds them by DNS); loopback only.
    assert worker["ports"] == ["127.0.0.1:6066-6075:6066"]
    assert kafka["ports"] == ["127.0.0.1:9092:9094"]  # the HOST listener, for kcat and publishers on the host
    advertised = dict(part.split("://") for part in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised == {"PLAINTEXT": "kafka:9092", "HOST": "127.0.0.1:9092"}
    assert worker["volumes"] == ["/data"]  # anonymous: one per replica, never shared
    for name in ("prometheus", "alertmanager", "grafana"):
        service = services[name]
        assert "healthcheck" in service and service["ports"]
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), service["ports"]
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    for name, service in services.items():  # exact versions: an upgrade is a change someone made
        image = service.get("image", "")
        assert ":" in image and not image.endswith((":latest", "-slim")) or image == "churnwatch:latest", name
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?"), "credentials come from .env, not the file"
    assert "GRAFANA_ADMIN_PASSWORD=" in (ROOT / ".env.example").read_text()
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert set(compose["volumes"]) == {"kafka-data", "prometheus-data", "alertmanager-data", "grafana-data"}


def test_the_image_build_context_leaves_out_environments_history_and_secrets() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", ".kafka"} <= set(ignored)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim-\w+$", dockerfile, re.M), "the base image by exact tag"
    copied = re.findall(r"^COPY (.+) \S+$", dockerfile, re.M)
    for sources in copied:
        for source in sources.split():
            assert source not in ignored, source


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
    assert "-c constraints.txt" in dockerfile
    assert 'CMD ["churnwatch", "worker"]' in dockerfile


def test_the_compose_kafka_runs_the_settings_the_kafka_tests_run() -> None:
    """docker-compose.yml's broker is configured as the one `make test-kafka` starts from Kafka's jars."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    kafka = compose["services"]["kafka"]
    pom = (ROOT / "ops/kafka/pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)
    assert kafka["image"] == f"apache/kafka:{version}"
    composed = {key.removeprefix("KAFKA_").lower().replace("_", "."): str(value)
                for key, value in kafka["environment"].items()}
    tested = KafkaBroker(work_dir=ROOT / "unused").server_properties()
    same = ("process.roles", "controller.listener.names", "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
            "share.coordinator.state.topic.replication.factor", "share.coordinator.state.topic.min.isr",
            "auto.create.topics.enable")
    assert {key: composed[key] for key in same} == {key: tested[key] for key in same}
    # The same listener names and protocols, on the hosts and ports of each place.
    def names(listeners: str) -> list[str]:
        return sorted(part.split("://")[0] for part in listeners.split(","))

    # The compose stack adds one listener of the same protocol for clients on the host.
    assert names(composed["listeners"]) == sorted([*names(tested["listeners"]), "HOST"])
    assert sorted(composed["listener.security.protocol.map"].split(",")) == \
        sorted([*tested["listener.security.protocol.map"].split(","), "HOST:PLAINTEXT"])
    assert composed["inter.broker.listener.name"] == tested["inter.broker.listener.name"]
    assert composed["controller.quorum.voters"].split("@")[0] == tested["controller.quorum.voters"].split("@")[0]
