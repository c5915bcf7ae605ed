"""Record a drift check on the registered model version it concerns (MLflow version tags).

Each check adds one tag and overwrites a summary tag on the version::

    cvops.drift.<UTC time, %Y%m%dT%H%M%S%fZ>   the event as JSON (one per check: the history)
    cvops.drift.latest                        the same JSON for the most recent check

The JSON holds the drift share, the verdict, the drifted features, both window labels and the
report folder, so the registry answers "has this model's input drifted, and where is the
evidence" without a separate store. Version tags suit this: they belong to exactly the version
whose inputs drifted, and survive alias moves. MLflow is imported inside the functions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from cvops.monitoring.results import DriftResult

DRIFT_TAG_PREFIX = "cvops.drift."
LATEST_DRIFT_TAG = "cvops.drift.latest"


def drift_event_json(result: DriftResult, at: datetime) -> str:
    """Return the compact JSON of one drift event (well under MLflow's 5000-character tag limit)."""
    return json.dumps(
        {
            "at": at.astimezone(UTC).isoformat(),
            "reference": result.reference,
            "current": result.current,
            "drift_share": round(result.drift_share, 4),
            "is_drifted": result.is_drifted,
            "drifted_features": list(result.drifted_features),
            "current_frames": result.current_frames,
            "report_dir": str(result.out_dir),
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def record_drift_on_model(
    result: DriftResult,
    model_uri: str,
    *,
    tracking_uri: str | None = None,
    state_dir: Path | None = None,
    at: datetime | None = None,
) -> str:
    """Tag the registered version named by ``model_uri`` with this drift check.

    Args:
        result: The drift check.
        model_uri: ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` (the alias is resolved now).
        tracking_uri: The MLflow tracking URI; None: the embedded registry of ``state_dir``.
        state_dir: The cvops state folder of the embedded registry.
        at: The event time (default: now, UTC).

    Returns:
        ``models:/NAME/VERSION`` of the version tagged.

    Raises:
        InvalidInputError: For a malformed URI.
        RegistryNotFoundError: When the model, version or alias does not exist.
        RegistryUnavailableError: When the tracking server cannot be reached.
    """
    from cvops.registry.mlflow_registry import ModelRegistry
    from cvops.registry.records import ModelRef

    ref = ModelRef.parse(model_uri)
    when = at if at is not None else datetime.now(UTC)
    payload = drift_event_json(result, when)
    key = f"{DRIFT_TAG_PREFIX}{when.astimezone(UTC):%Y%m%dT%H%M%S%fZ}"
    record = ModelRegistry(tracking_uri, state_dir=state_dir).set_version_tags(
        ref.name,
        ref.alias if ref.alias is not None else str(ref.version),
        {key: payload, LATEST_DRIFT_TAG: payload},
    )
    return record.uri


def drift_events(
    model_uri: str, *, tracking_uri: str | None = None, state_dir: Path | None = None
) -> list[dict[str, object]]:
    """Return the drift events recorded on a version, oldest first (read from its tags).

    Raises:
        RegistryNotFoundError: When the model, version or alias does not exist.
    """
    from cvops.registry.mlflow_registry import ModelRegistry
    from cvops.registry.records import ModelRef

    ref = ModelRef.parse(model_uri)
    registry = ModelRegistry(tracking_uri, state_dir=state_dir)
    tags = registry.version_tags(ref.name, ref.alias if ref.alias is not None else str(ref.version))
    keys = sorted(k for k in tags if k.startswith(DRIFT_TAG_PREFIX) and k != LATEST_DRIFT_TAG)
    return [json.loads(tags[k]) for k in keys]
