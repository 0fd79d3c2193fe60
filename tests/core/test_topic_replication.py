"""abvoc's Kafka topics take the cluster's replication (its default.replication.factor), not a
fixed 1: on a cluster that keeps two copies, one broker lost lost the partitions it held alone
(the exploratory pass's D5). One broker cannot hold two copies, so a cluster asking for two
refuses the topics, saying why: the request follows the cluster's setting."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from core.bus import BusUnavailable
from core.bus.kafka import KafkaBus
from tests.support.kafka import KafkaBroker


@pytest.fixture(scope="module")
def two_copies() -> Iterator[KafkaBroker]:
    broker = KafkaBroker(settings={"default.replication.factor": "2"}).start()
    yield broker
    broker.discard()


def test_topics_follow_the_cluster_s_replication(kafka, two_copies: KafkaBroker) -> None:  # noqa: ANN001
    topic = f"rf-{uuid.uuid4().hex[:8]}"
    with pytest.raises(BusUnavailable, match=rf"could not create topic '{topic}': .*"
                                             r"[Rr]eplication factor"):
        KafkaBus([two_copies.bootstrap]).ensure_topics([topic])
    # The test cluster keeps one copy: the same call makes the topic there, one replica each.
    KafkaBus([kafka.bootstrap]).ensure_topics([topic])
    metadata = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(topic, 10)
    assert [len(p.replicas) for p in metadata.topics[topic].partitions.values()] == [1, 1, 1]
