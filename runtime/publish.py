"""The publish phase of an --atomic run: writers' staged loads, published together at the end."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from osiris.runtime.drivers.base import Publication
from osiris.runtime.outcomes import describe_error


@dataclass(frozen=True, slots=True)
class Held:
    step_id: str
    publication: Publication


@dataclass(frozen=True, slots=True)
class PublishReport:
    """What the publish phase did: published and unpublished targets, by writer step."""

    published: tuple[Held, ...]
    unpublished: tuple[Held, ...]
    failed: Held | None = None
    error: str | None = None

    def message(self) -> str:
        """The run's error when a publication failed: which targets changed, which did not."""
        assert self.failed is not None
        done = ", ".join(f"'{h.step_id}' ({h.publication.target})" for h in self.published)
        left = ", ".join(f"'{h.step_id}' ({h.publication.target})" for h in self.unpublished)
        return (
            f"publishing step '{self.failed.step_id}' failed: {self.error}; "
            f"already published: {done or 'none'}; not published (left as they were): "
            f"{left or 'none'}"
        )


class Publications:
    """Writers' pending publications, held until every step of the run has succeeded."""

    def __init__(self) -> None:
        self._held: list[Held] = []
        self._lock = threading.Lock()

    def hold(self, step_id: str, publication: Publication) -> None:
        with self._lock:
            self._held.append(Held(step_id, publication))

    def __len__(self) -> int:
        return len(self._held)

    def _take(self, order: Sequence[str]) -> list[Held]:
        position = {step_id: index for index, step_id in enumerate(order)}
        with self._lock:
            held, self._held = self._held, []
        return sorted(held, key=lambda h: position.get(h.step_id, len(position)))

    def publish_all(self, order: Sequence[str], redact: Callable[[str], str]) -> PublishReport:
        """Publish in manifest order; after a failure, discard the rest. This is not a
        distributed transaction: targets published before the failure stay published."""
        held = self._take(order)
        for index, item in enumerate(held):
            try:
                item.publication.publish()
            except BaseException as err:
                rest = held[index + 1 :]
                for later in rest:
                    later.publication.discard()
                if not isinstance(err, Exception):  # stopped (Ctrl-C): nothing more is published
                    raise
                return PublishReport(
                    tuple(held[:index]), (item, *rest), item, describe_error(err, redact)
                )
        return PublishReport(tuple(held), ())

    def discard_all(self) -> tuple[Held, ...]:
        """Discard everything still held (a step failed, or the run was stopped)."""
        held = self._take(())
        for item in held:
            item.publication.discard()
        return tuple(held)
