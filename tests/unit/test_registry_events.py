"""Alias history: event encoding, ordering, and the rollback logic replayed from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cvops.errors import InvalidInputError, RegistryError
from cvops.registry.events import (
    AliasEvent,
    EventAction,
    alias_stack,
    events_from_tags,
    next_sequence,
    rollback_target,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(
    sequence: int,
    action: EventAction,
    to_version: int | None,
    alias: str = "champion",
    from_version: int | None = None,
    event_id: str | None = None,
    seconds: float = 0.0,
) -> AliasEvent:
    return AliasEvent(
        sequence=sequence,
        event_id=event_id or f"{sequence:012x}",
        alias=alias,
        action=action,
        from_version=from_version,
        to_version=to_version,
        who="alice",
        why="because",
        at=T0 + timedelta(seconds=seconds or sequence),
    )


def history(*moves: tuple[EventAction, int | None] | tuple[EventAction, int | None, str]) -> list[AliasEvent]:
    """Events numbered 1.. from (action, to_version[, alias]) tuples."""
    return [event(i, move[0], move[1], *move[2:]) for i, move in enumerate(moves, start=1)]


@pytest.mark.parametrize(
    ("moves", "stack", "target"),
    [
        ([], [], None),
        ([("promote", 1)], [1], None),
        ([("promote", 1), ("promote", 2)], [1, 2], 1),
        ([("promote", 1), ("promote", 2), ("rollback", 1)], [1], None),
        ([("promote", 1), ("promote", 2), ("promote", 3), ("rollback", 2)], [1, 2], 1),
        ([("promote", 1), ("promote", 2), ("promote", 1)], [1, 2, 1], 2),
        ([("promote", 1), ("promote", 2, "challenger"), ("promote", 3)], [1, 3], 1),
        ([("promote", 1), ("retire", None), ("promote", 2)], [2], None),
        # a rollback whose target disagrees with the stack (alias moved outside cvops) replaces the top
        ([("promote", 1), ("promote", 2), ("rollback", 5)], [1, 5], 1),
        ([("rollback", 4)], [4], None),
    ],
    ids=[
        "empty",
        "one-promotion",
        "two-promotions",
        "rolled-back-to-first",
        "repeated-rollback-walks-back",
        "re-promoted-old-version",
        "other-alias-ignored",
        "retire-clears",
        "rollback-target-trusted",
        "rollback-without-history",
    ],
)
def test_alias_stack_and_rollback_target(
    moves: list[tuple[EventAction, int | None]], stack: list[int], target: int | None
) -> None:
    events = history(*moves)
    assert alias_stack(events, "champion") == stack
    assert rollback_target(events, "champion") == target


def test_event_round_trips_through_its_tag() -> None:
    original = AliasEvent(
        sequence=7,
        event_id="0123456789ab",
        alias="challenger",
        action="promote",
        from_version=2,
        to_version=3,
        who="ci",
        why="mAP +3",
        at=T0,
        evidence={"map50": 0.52, "report": "s3://r/7.html", "per_class": {"person": 0.7}},
    )
    assert original.tag_key == "cvops.event.00000007.0123456789ab"
    assert AliasEvent.from_tag(original.tag_key, original.to_json()) == original


def test_events_from_tags_orders_by_sequence_then_time_and_ignores_other_tags() -> None:
    # Two writers raced for sequence 2: both kept, the earlier one first.
    late = event(2, "promote", 3, event_id="bbbbbbbbbbbb", seconds=20)
    early = event(2, "promote", 2, event_id="aaaaaaaaaaaa", seconds=10)
    first = event(1, "promote", 1)
    tags = {e.tag_key: e.to_json() for e in (late, first, early)}
    tags["cvops.owner"] = "team-vision"
    tags["cvops.event.note"] = "not an event key"
    events = events_from_tags(tags)
    assert events == [first, early, late]
    assert next_sequence(events) == 3
    assert next_sequence([]) == 1


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cvops.event.00000001.0123456789ab", "{not json", "malformed"),
        ("cvops.event.00000001.0123456789ab", '{"sequence": 1}', "malformed"),
        ("cvops.event.00000009.0123456789ab", None, "its JSON says"),
    ],
    ids=["not-json", "missing-fields", "key-mismatch"],
)
def test_malformed_event_tag_is_named(key: str, value: str | None, message: str) -> None:
    stored = event(1, "promote", 1, event_id="0123456789ab").to_json() if value is None else value
    with pytest.raises(RegistryError, match=message):
        events_from_tags({key: stored})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sequence": 0}, "sequence"),
        ({"event_id": "XYZ"}, "event_id"),
        ({"who": " "}, "who"),
        ({"action": "demote"}, "action"),
        ({"action": "retire"}, "to_version"),
        ({"to_version": None}, "to_version"),
        ({"at": datetime(2026, 1, 1)}, "timezone"),
    ],
    ids=[
        "sequence",
        "event-id",
        "who",
        "action",
        "retire-with-version",
        "promote-without-version",
        "naive-time",
    ],
)
def test_event_rejects_bad_fields(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "sequence": 1,
        "event_id": "0123456789ab",
        "alias": "champion",
        "action": "promote",
        "from_version": None,
        "to_version": 1,
        "who": "alice",
        "why": "because",
        "at": T0,
    }
    with pytest.raises(InvalidInputError, match=message):
        AliasEvent(**{**fields, **changes})  # type: ignore[arg-type]
