"""The benchmarks that need Kafka use the test suite's stack (started once, stopped after)."""

from tests.conftest import settings, stack

__all__ = ["settings", "stack"]
