"""The Kafka connector: client configuration from settings, readiness, temporary topics.

Any librdkafka option reaches every client through ``Settings.kafka_config``; only our own keys
are validated, the rest is handed to librdkafka as it is (and librdkafka validates it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from bankstream.errors import BankstreamError, UsageError
from bankstream.logs import LIBRDKAFKA_LOGGER
from bankstream.settings import Settings

T = TypeVar("T")


class KafkaUnavailable(BankstreamError):
    """The configured Kafka cluster did not answer."""


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for any client: bootstrap + pass-through + ``extra`` (wins)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "logger": logging.getLogger(LIBRDKAFKA_LOGGER),
        **settings.kafka_config,
        **extra,
    }


def _client(kind: Callable[[dict[str, Any]], T], settings: Settings, **extra: Any) -> T:
    """A confluent-kafka client; a setting librdkafka refuses becomes a one-line UsageError."""
    try:
        return kind(client_config(settings, **extra))
    except (KafkaException, TypeError, ValueError) as exc:
        error = exc.args[0] if exc.args else exc
        reason = settings.scrub(error.str() if isinstance(error, KafkaError) else str(error))
        msg = f"Kafka client setting refused: {reason}; fix BANKSTREAM_KAFKA_CONFIG"
        raise UsageError(msg) from None


def admin_client(settings: Settings) -> AdminClient:
    return _client(AdminClient, settings)


def producer(settings: Settings, **extra: Any) -> Producer:
    return _client(Producer, settings, **extra)


def consumer(settings: Settings, **extra: Any) -> Consumer:
    return _client(Consumer, settings, **extra)


def wait_for_metadata(settings: Settings, timeout: float) -> ClusterMetadata:
    """Cluster metadata with at least one broker, or :class:`KafkaUnavailable` after ``timeout``."""
    admin = admin_client(settings)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        error = exc.args[0]
        reason = error.str() if isinstance(error, KafkaError) else str(error)
        msg = (
            f"Kafka at {settings.kafka_bootstrap} did not answer within {timeout:g} s "
            f"({settings.scrub(reason)}); {settings.remedy('kafka_bootstrap')}"
        )
        raise KafkaUnavailable(msg) from None
    if not metadata.brokers:
        msg = f"Kafka at {settings.kafka_bootstrap} answered without any broker"
        raise KafkaUnavailable(msg)
    return metadata


def create_topic(
    admin: AdminClient,
    name: str,
    partitions: int = 1,
    replication_factor: int = 1,
    config: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create ``name`` and wait until it exists; an existing topic is an error."""
    topic = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=replication_factor,
        config=config or {},
    )
    futures = admin.create_topics([topic], operation_timeout=timeout, request_timeout=timeout)
    futures[name].result(timeout=timeout)


def delete_topic(admin: AdminClient, name: str, timeout: float = 30.0) -> None:
    """Delete ``name``; a topic that does not exist is fine."""
    futures = admin.delete_topics([name], operation_timeout=timeout, request_timeout=timeout)
    try:
        futures[name].result(timeout=timeout)
    except KafkaException as exc:
        error = exc.args[0]
        if not (isinstance(error, KafkaError) and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            raise


def group_offsets(
    admin: AdminClient, reader: Consumer, topic: str, timeout: float = 5.0
) -> dict[int, tuple[int, int]] | None:
    """Each partition of ``topic``: (its end offset, the offset the consumer group has committed,
    0 where it committed none); None when the broker does not answer. ``reader`` is a consumer
    of that group that never subscribes (it joins nothing, it only asks); independent of the
    group's members' own reports: a partition nobody holds (its consumer died) shows too.

    The committed offsets come from the consumer, not from the admin client's
    ListConsumerGroupOffsets: librdkafka (2.16 here) dereferences a null group
    handle when that admin request meets NOT_COORDINATOR, which a broker restart causes
    (confluentinc/librdkafka#5040): the whole process dies of SIGSEGV."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    try:
        metadata = admin.list_topics(topic, timeout=timeout)
        partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        ends = admin.list_offsets({tp: latest for tp in partitions}, request_timeout=timeout)
        done = {tp.partition: max(0, tp.offset) for tp in reader.committed(partitions, timeout)}
        return {
            tp.partition: (future.result(timeout=timeout).offset, done.get(tp.partition, 0))
            for tp, future in ends.items()
        }
    except Exception:  # the broker away, the topic gone: unknown
        return None
