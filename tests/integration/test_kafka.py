from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bankstream import kafka
from bankstream.settings import Settings

pytestmark = pytest.mark.integration


def test_keyed_messages_round_trip(stack: Settings, topic: str):
    producer = Producer(
        kafka.client_config(stack, **{"enable.idempotence": True, "acks": "all", "linger.ms": 5})
    )
    errors: list[object] = []
    sent = {f"{i}": f"acct-{i % 37}" for i in range(1000)}
    for value, key in sent.items():
        producer.produce(
            topic,
            key=key,
            value=value,
            on_delivery=lambda err, _m: errors.append(err) if err else None,
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []

    consumer = Consumer(kafka.client_config(stack, **{"group.id": topic}))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    received: dict[str, str] = {}
    partitions: dict[str, set[int]] = {}
    offsets: dict[int, list[int]] = {}
    deadline = time.monotonic() + 60
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=1):
                assert msg.error() is None
                key, value = msg.key().decode(), msg.value().decode()
                assert value not in received, "duplicate message"
                received[value] = key
                partitions.setdefault(key, set()).add(msg.partition())
                offsets.setdefault(msg.partition(), []).append(msg.offset())
    finally:
        consumer.close()
    assert received == sent
    assert all(len(p) == 1 for p in partitions.values()), "a key on several partitions"
    assert len({p for ps in partitions.values() for p in ps}) > 1, "all keys on one partition"
    for offs in offsets.values():
        assert offs == sorted(offs)


def test_unreachable_bootstrap_fails_fast_naming_the_address():
    from bankstream.kafka import KafkaUnavailable, wait_for_metadata
    from bankstream.settings import load_settings
    from tests.conftest import free_port

    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(KafkaUnavailable) as err:
        wait_for_metadata(load_settings(kafka_bootstrap=address), timeout=2)
    assert address in err.value.message
    assert "BANKSTREAM_KAFKA_BOOTSTRAP" in err.value.message
