"""The local stack: Kafka (KRaft), a MongoDB-wire server and Prometheus on loopback, no Docker."""
