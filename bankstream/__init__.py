"""bankstream: a load generator and benchmark harness for Kafka -> MongoDB pipelines."""

__version__ = "0.1.0"
