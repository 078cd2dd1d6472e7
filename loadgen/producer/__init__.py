"""The producer: the engine's events into Kafka from several processes at a controlled rate
(`bankstream produce`), and the run manifest that says what was sent.

The engine (``loadgen`` outside this package) imports nothing of Kafka; this package is where
confluent-kafka comes in.
"""
