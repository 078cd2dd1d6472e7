"""The sink: Kafka -> MongoDB, each transaction stored once, projections exact (docs/sink.md)."""
