"""Alias events: the audit trail MLflow does not keep, and the rollback logic replayed from it.

MLflow stores only where an alias points now. cvops records every alias move it makes as one
:class:`AliasEvent`, stored as a tag on the registered model::

    key    cvops.event.<sequence, 8 digits>.<event id, 12 hex digits>
    value  the event as JSON (alias, action, from/to version, who, when, why, evidence)

Why tags on the registered model: they live in the registry's own database next to the
aliases they describe (no run or artifact store involved), one ``get_registered_model`` call
reads the whole trail, and a tag write is a single upsert, the smallest unit MLflow offers.

Concurrent writers: a writer numbers its event one above the highest sequence it has seen.
Two writers racing may pick the same number, but the random event id makes their keys
different, so neither event overwrites the other; ties are ordered by time, then by id. The
alias move itself is not a transaction with the event: see ``ModelRegistry.promote``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from cvops.errors import InvalidInputError, RegistryError

EVENT_TAG_PREFIX = "cvops.event."
_EVENT_KEY = re.compile(r"^cvops\.event\.(\d{8})\.([0-9a-f]{12})$")

EventAction = Literal["promote", "rollback", "retire"]
"""``promote``: the alias moves to a chosen version. ``rollback``: it moves back to the version
it held before the last promotion. ``retire``: the alias is removed (``to_version`` is None)."""


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of one alias of a registered model.

    Attributes:
        sequence: Position in the model's history, from 1; equal numbers are ordered by ``at``.
        event_id: 12 lowercase hex digits, unique per event.
        alias: The alias moved, e.g. ``champion``.
        action: What was done (see :data:`EventAction`).
        from_version: The version the alias pointed to before, None when it was unset.
        to_version: The version it points to after, None for ``retire``.
        who: The person or pipeline that moved it.
        why: The reason given.
        at: When, timezone-aware (UTC).
        evidence: JSON-serializable facts backing the decision (metrics, report URIs).
    """

    sequence: int
    event_id: str
    alias: str
    action: EventAction
    from_version: int | None
    to_version: int | None
    who: str
    why: str
    at: datetime
    evidence: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sequence < 1:
            raise InvalidInputError(f"sequence: expected >= 1, got {self.sequence}")
        if not re.fullmatch(r"[0-9a-f]{12}", self.event_id):
            raise InvalidInputError(f"event_id: expected 12 lowercase hex digits, got {self.event_id!r}")
        if not self.alias or not self.who.strip() or not self.why.strip():
            raise InvalidInputError("alias, who and why: expected non-empty strings")
        if self.action not in get_args(EventAction):
            raise InvalidInputError(f"action: expected one of {get_args(EventAction)}, got {self.action!r}")
        if (self.to_version is None) != (self.action == "retire"):
            raise InvalidInputError(
                f"to_version: expected None exactly for 'retire', got {self.to_version} for {self.action!r}"
            )
        if self.at.tzinfo is None:
            raise InvalidInputError("at: expected a timezone-aware datetime")

    @property
    def tag_key(self) -> str:
        """Return the registered-model tag key this event is stored under."""
        return f"{EVENT_TAG_PREFIX}{self.sequence:08d}.{self.event_id}"

    def to_json(self) -> str:
        """Return the tag value: the event as compact JSON."""
        return json.dumps(
            {
                "sequence": self.sequence,
                "event_id": self.event_id,
                "alias": self.alias,
                "action": self.action,
                "from_version": self.from_version,
                "to_version": self.to_version,
                "who": self.who,
                "why": self.why,
                "at": self.at.isoformat(),
                "evidence": dict(self.evidence),
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_tag(cls, key: str, value: str) -> AliasEvent:
        """Parse one stored event.

        Raises:
            RegistryError: When the tag is not a well-formed event (the trail was edited by hand).
        """
        try:
            data = json.loads(value)
            event = cls(
                sequence=int(data["sequence"]),
                event_id=str(data["event_id"]),
                alias=str(data["alias"]),
                action=data["action"],
                from_version=_optional_int(data["from_version"]),
                to_version=_optional_int(data["to_version"]),
                who=str(data["who"]),
                why=str(data["why"]),
                at=datetime.fromisoformat(data["at"]),
                evidence=dict(data.get("evidence") or {}),
            )
        except (ValueError, KeyError, TypeError, InvalidInputError) as error:
            raise RegistryError(f"alias event tag {key!r}: malformed ({error})") from error
        if event.tag_key != key:
            raise RegistryError(f"alias event tag {key!r}: its JSON says {event.tag_key!r}")
        return event


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def events_from_tags(tags: Mapping[str, str]) -> list[AliasEvent]:
    """Return the events among a registered model's tags, oldest first.

    Order: sequence, then time, then event id (so concurrent writers' ties are stable).
    """
    events = [AliasEvent.from_tag(key, value) for key, value in tags.items() if _EVENT_KEY.match(key)]
    return sorted(events, key=lambda event: (event.sequence, event.at, event.event_id))


def next_sequence(events: Iterable[AliasEvent]) -> int:
    """Return the sequence number for the next event: one above the highest seen."""
    return max((event.sequence for event in events), default=0) + 1


def alias_stack(events: Iterable[AliasEvent], alias: str) -> list[int]:
    """Replay one alias' events into the stack of versions it has held, current on top.

    ``promote`` pushes the new version; ``rollback`` pops the top, and if what is then on top
    is not the recorded target (the alias was moved outside cvops) the target is pushed, so the
    stack always ends at where the alias points; ``retire`` clears it.

    Args:
        events: Events of one registered model, oldest first.
        alias: The alias to replay; other aliases' events are ignored.
    """
    stack: list[int] = []
    for event in events:
        if event.alias != alias:
            continue
        if event.action == "promote":
            assert event.to_version is not None  # checked in __post_init__
            stack.append(event.to_version)
        elif event.action == "rollback":
            assert event.to_version is not None
            if stack:
                stack.pop()
            if not stack or stack[-1] != event.to_version:
                stack.append(event.to_version)
        else:
            stack.clear()
    return stack


def rollback_target(events: Iterable[AliasEvent], alias: str) -> int | None:
    """Return the version a rollback of ``alias`` restores, or None when there is none.

    That is the version the alias held before its current one, skipping what earlier rollbacks
    already undid: promote 1, promote 2, promote 3, rollback (to 2), rollback -> 1.
    """
    stack = alias_stack(events, alias)
    return stack[-2] if len(stack) >= 2 else None
