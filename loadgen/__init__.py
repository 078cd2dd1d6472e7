"""loadgen: generation of banking activity (the engine) and, later, its producer into Kafka."""
