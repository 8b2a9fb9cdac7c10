"""Files of events (JSON lines) checked and published as the worker would take them.

When a publisher's events are dead-lettered, the next step is to check a
file of them by hand, and to send a corrected file: ``churnwatch validate``
and ``churnwatch publish`` do both with the worker's own validation, so a
line that passes here passes there (the key is the ``customer_id``, the
topic the event type's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from churnwatch.schemas.events import Event
from churnwatch.schemas.intake import Rejection, too_large, validate_event

SHOWN_REJECTS = 20


@dataclass
class FileCheck:
    """What a file held: valid events, and rejected lines by reason (the first ``shown`` in full; None: all)."""

    valid: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    shown: int | None = SHOWN_REJECTS

    def count(self, line_number: int, checked: Event | Rejection) -> None:
        if isinstance(checked, Rejection):
            self.rejected[checked.reason.value] += 1
            if self.shown is None or len(self.examples) < self.shown:
                self.examples.append(f"line {line_number}: {checked.reason.value}: {checked.error}")
        else:
            self.valid += 1
            self.by_type[checked.type] += 1

    def report(self, verb: str) -> str:
        """``verb``: what was done with the valid events ("valid", "published")."""
        types = ", ".join(f"{n} {kind}" for kind, n in sorted(self.by_type.items()))
        lines = [f"{self.valid} events {verb}" + (f" ({types})" if types else "")]
        if self.rejected:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.rejected.most_common())
            lines.append(f"{self.rejected.total()} lines rejected ({reasons}):")
            lines += [f"  {example}" for example in self.examples]
            if self.rejected.total() > len(self.examples):
                lines.append(f"  ... and {self.rejected.total() - len(self.examples)} more")
        return "\n".join(lines)


def checked_lines(lines: Iterable[bytes], max_bytes: int | None = None) -> Iterator[tuple[int, Event | Rejection]]:
    """Each non-blank line, numbered from 1, as the worker's intake sees its message value (``max_bytes``: the
    worker's ``CHURNWATCH_MAX_MESSAGE_BYTES``, a longer line refused as ``too_large`` as the worker refuses it)."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            value = line.rstrip(b"\r\n")
            yield number, too_large(value, max_bytes) or validate_event(value)
