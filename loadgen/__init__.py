"""loadgen: the engine that makes banking activity (population, draws, fraud, the ledger and its
C loop, the calendar, cells, the stream, pacing; `bankstream generate`) and, in
``loadgen.producer``, the producer that sends it to Kafka. The engine imports nothing of Kafka
(tests/unit/test_engine.py checks it)."""
