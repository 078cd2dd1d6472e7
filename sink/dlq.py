"""The dead-letter topic: messages that are not events go there with why, and the sink goes on.

Each keeps its key and value as they came; headers say where it came from and what was wrong:
``bankstream.error``, ``bankstream.topic``, ``bankstream.partition``, ``bankstream.offset``.
The sink stores a batch's offsets only once its dead letters are acknowledged, so a message is
either written, dead-lettered, or read again.
"""

from __future__ import annotations

from typing import Any

from sink.decode import Bad


class DeadLetters:
    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.failed = 0
        self.sent = 0

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            self.sent += 1
        else:
            self.failed += 1

    def send(self, bad: list[Bad]) -> None:
        for letter in bad:
            headers = [
                ("bankstream.error", letter.reason.encode("utf-8", "replace")[:1000]),
                ("bankstream.topic", letter.topic.encode()),
                ("bankstream.partition", str(letter.partition).encode()),
                ("bankstream.offset", str(letter.offset).encode()),
            ]
            while True:
                try:
                    self.producer.produce(
                        self.topic,
                        value=letter.value,
                        key=letter.key,
                        headers=headers,
                        on_delivery=self._delivered,
                    )
                    break
                except BufferError:
                    self.producer.poll(0.1)

    def flush(self, timeout: float) -> bool:
        """Wait for the dead letters in flight; True when every one was acknowledged."""
        left = self.producer.flush(timeout)
        return left == 0 and self.failed == 0
