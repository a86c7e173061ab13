"""The local Redis and Kafka that development and the adapter tests run against, for real."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.services

TOPICS = REPO / "scripts" / "kafka-topics.sh"


def topics(broker: Any, *args: str) -> str:
    """scripts/kafka-topics.sh against the broker, as an operator would type it."""
    result = subprocess.run(
        [str(TOPICS), "--bootstrap-server", broker.bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "log4j" not in result.stderr.lower(), result.stderr
    return result.stdout


def test_redis_answers_ping(redis_server: Any) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.is_running()
    assert redis_server.command("PING") == "PONG"


def test_redis_keeps_its_data_across_a_graceful_restart(redis_server: Any) -> None:
    key, value = f"restart:{uuid.uuid4().hex}", uuid.uuid4().hex
    assert redis_server.command("SET", key, value) == "OK"
    port = redis_server.port
    try:
        redis_server.stop()
        assert not redis_server.is_running()
    finally:
        redis_server.start()
    assert redis_server.port == port  # the same address after a restart
    assert redis_server.command("GET", key) == value.encode()


def test_kafka_topic_created_listed_and_described(kafka_broker: Any) -> None:
    assert kafka_broker.bootstrap == f"127.0.0.1:{kafka_broker.port}"
    topic = f"local-services-{uuid.uuid4().hex[:8]}"
    created = topics(
        kafka_broker, "--create", "--topic", topic, "--partitions", "3", "--replication-factor", "1"
    )
    assert f"Created topic {topic}." in created
    assert topic in topics(kafka_broker, "--list").split()
    described = topics(kafka_broker, "--describe", "--topic", topic)
    assert "PartitionCount: 3" in described
    partitions = [line for line in described.splitlines() if "Partition: " in line]
    assert len(partitions) == 3 and all("Leader: 1" in line for line in partitions)


def test_kafka_keeps_its_topics_across_a_graceful_restart(kafka_broker: Any) -> None:
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    topics(kafka_broker, "--create", "--topic", topic, "--partitions", "3")
    bootstrap = kafka_broker.bootstrap
    try:
        kafka_broker.stop()
        assert not kafka_broker.is_running()
    finally:
        kafka_broker.start()
    assert kafka_broker.bootstrap == bootstrap
    assert topic in topics(kafka_broker, "--list").split()
    assert "PartitionCount: 3" in topics(kafka_broker, "--describe", "--topic", topic)
