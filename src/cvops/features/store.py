"""Feast adapter: stage the declarations of ``feature_repo/``, apply, materialize and read features.

A *feature repository* here is a folder holding the declarations (``entities.py``, ``sources.py``,
``views.py``, ``services.py``, ``.feastignore``), a ``feature_store.yaml`` and, under ``data/``,
everything Feast and cvops write: ``data/registry.db``, ``data/online.db`` (sqlite online store)
and ``data/offline/`` (the parquet files of :mod:`cvops.features.offline_store`). Every path in
the declarations is relative, and Feast resolves relative paths against the repository folder,
so where the data lives is chosen by where the repository is staged: the cvops state folder in
production, a tmp folder in tests (:func:`stage_feature_repo`).

Feast is imported inside the functions (it takes seconds). ``apply`` runs the real ``feast`` CLI
in a child process: Feast imports the declaration modules by their bare names (``entities``,
``views``), which would otherwise stay cached in this process and shadow a second repository.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvops.errors import FeatureStoreError, InvalidInputError

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]  # no stubs installed
    from feast import FeatureStore

logger = logging.getLogger(__name__)

DECLARATION_FILES = ("entities.py", "sources.py", "views.py", "services.py", ".feastignore")
CONFIG_FILE = "feature_store.yaml"
DATA_DIR = "data"
FRAME_SERVICE = "frame_selection"
CAMERA_SERVICE = "camera_health"
ENTITY_COLUMNS = ("camera_id", "frame_index", "event_timestamp")
_FEAST_CLI = "import sys; from feast.cli.cli import cli; sys.exit(cli())"


@dataclass(frozen=True, slots=True)
class SqliteOnlineStore:
    """Feast's sqlite online store, a file (relative paths are under the repository)."""

    path: str = f"{DATA_DIR}/online.db"


@dataclass(frozen=True, slots=True)
class RedisOnlineStore:
    """Feast's Redis online store.

    Attributes:
        connection_string: ``host:port`` plus optional ``,password=...,ssl=true`` settings.
    """

    connection_string: str

    def __post_init__(self) -> None:
        """Reject a connection string without a port."""
        host, _, port = self.connection_string.split(",")[0].rpartition(":")
        if not host or not port.isdigit():
            raise InvalidInputError(f"connection_string: expected host:port, got {self.connection_string!r}")


OnlineStore = SqliteOnlineStore | RedisOnlineStore


def offline_dir(repo_dir: Path) -> Path:
    """Return the offline folder of a staged repository: where the parquet sources point."""
    return repo_dir / DATA_DIR / "offline"


def stage_feature_repo(
    declarations_dir: Path, repo_dir: Path, online_store: OnlineStore | None = None
) -> Path:
    """Copy the declarations into ``repo_dir`` and write its ``feature_store.yaml``.

    Declarations and the config are replaced; ``data/`` (registry, online store, parquet files)
    is kept, so staging again after editing ``feature_repo/`` and re-applying keeps the features.

    Args:
        declarations_dir: The ``feature_repo/`` folder of cvops (entities, sources, views,
            services, ``.feastignore`` and the local ``feature_store.yaml``).
        repo_dir: Where to stage; created if missing. May be ``declarations_dir`` itself (then
            only the config is rewritten, and only when ``online_store`` is given).
        online_store: The online store; None keeps the one of the declarations' config (sqlite).

    Returns:
        ``repo_dir``.

    Raises:
        FeatureStoreError: When a declaration file is missing or a file cannot be written.
    """
    import yaml

    missing = [name for name in (*DECLARATION_FILES, CONFIG_FILE) if not (declarations_dir / name).is_file()]
    if missing:
        raise FeatureStoreError(
            f"{declarations_dir}: expected a Feast repository with {', '.join(missing)}, not found"
        )
    try:
        config = yaml.safe_load((declarations_dir / CONFIG_FILE).read_text())
        repo_dir.mkdir(parents=True, exist_ok=True)
        if repo_dir.resolve() != declarations_dir.resolve():
            for name in DECLARATION_FILES:
                shutil.copyfile(declarations_dir / name, repo_dir / name)
        elif online_store is None:
            return repo_dir
        if isinstance(online_store, SqliteOnlineStore):
            config["online_store"] = {"type": "sqlite", "path": online_store.path}
        elif isinstance(online_store, RedisOnlineStore):
            config["online_store"] = {"type": "redis", "connection_string": online_store.connection_string}
        (repo_dir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    except (OSError, yaml.YAMLError) as error:
        raise FeatureStoreError(f"{repo_dir}: could not stage the feature repository ({error})") from error
    return repo_dir


def apply_feature_repo(repo_dir: Path, *, timeout_s: float = 600.0) -> None:
    """Register the repository's entities, sources, views and services: ``feast apply``.

    Args:
        repo_dir: A staged repository (:func:`stage_feature_repo`).
        timeout_s: Give up after this long.

    Raises:
        FeatureStoreError: When ``feast apply`` fails or times out (with its last error line).
    """
    _check_repo(repo_dir)
    command = [sys.executable, "-c", _FEAST_CLI, "--chdir", str(repo_dir), "apply"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise FeatureStoreError(f"{repo_dir}: feast apply took longer than {timeout_s:.0f} s") from error
    logger.debug("feast apply: %s", done.stdout)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise FeatureStoreError(f"{repo_dir}: feast apply failed: {reason}")


def materialize_features(repo_dir: Path, end: datetime, start: datetime | None = None) -> None:
    """Copy the latest offline values into the online store.

    Args:
        repo_dir: An applied repository.
        end: Newest event time to load (timezone-aware).
        start: Oldest event time to load; None loads what is new since the last materialization
            (``materialize-incremental``; the first one goes back each view's ttl).

    Raises:
        InvalidInputError: When a time is naive or ``start`` is after ``end``.
        FeatureStoreError: When Feast fails (an unapplied repository, an unreachable online store).
    """
    _check_aware("end", end)
    if start is not None:
        _check_aware("start", start)
        if start > end:
            raise InvalidInputError(f"start: expected <= end ({end}), got {start}")
    store = _store(repo_dir)
    views = [view.name for view in store.list_feature_views() if _has_offline_data(repo_dir, view)]
    if not views:
        raise FeatureStoreError(
            f"{repo_dir}: expected parquet files under {offline_dir(repo_dir)}, found none"
        )
    try:
        if start is None:
            store.materialize_incremental(end_date=end.astimezone(UTC), feature_views=views)
        else:
            store.materialize(
                start_date=start.astimezone(UTC), end_date=end.astimezone(UTC), feature_views=views
            )
    except _store_errors() as error:
        raise FeatureStoreError(
            f"{repo_dir}: materialize failed ({type(error).__name__}: {error})"
        ) from error


def online_frame_features(
    repo_dir: Path, camera_id: str, frame_index: int | None = None, feature_service: str | None = None
) -> dict[str, Any]:
    """Return the online features of a frame, or of a camera (None for unknown values).

    Args:
        repo_dir: An applied, materialized repository.
        camera_id: The camera.
        frame_index: The frame's 0-based index in its source; None reads the camera only.
        feature_service: The service to read; None picks ``frame_selection`` for a frame and
            ``camera_health`` for a camera.

    Returns:
        Feature name -> value, plus the entity keys.

    Raises:
        FeatureStoreError: When the repository or the service does not exist, or the online store
            cannot be read.
    """
    row: dict[str, Any] = {"camera_id": camera_id}
    if frame_index is not None:
        row["frame_index"] = frame_index
    name = feature_service or (FRAME_SERVICE if frame_index is not None else CAMERA_SERVICE)
    store = _store(repo_dir)
    service = _service(store, repo_dir, name)
    try:
        response = store.get_online_features(features=service, entity_rows=[row]).to_dict()
    except _store_errors() as error:
        raise FeatureStoreError(
            f"{repo_dir}: online read failed ({type(error).__name__}: {error})"
        ) from error
    return {key: values[0] for key, values in response.items()}


def historical_frame_features(
    repo_dir: Path, entity_rows: pd.DataFrame, feature_service: str = FRAME_SERVICE
) -> pd.DataFrame:
    """Join features to frames as they were known at each row's time (point-in-time correct).

    For each row, each view contributes its latest value with an event time at or before the
    row's ``event_timestamp`` (and within the view's ttl); values written later are not joined.

    Args:
        repo_dir: An applied repository (the offline store is read; no materialization needed).
        entity_rows: Columns ``camera_id`` (str), ``frame_index`` (int) and ``event_timestamp``
            (timezone-aware); other columns are carried through.
        feature_service: The feature service to read (``frame_selection`` by default).

    Returns:
        ``entity_rows`` (same rows, same order, times in UTC) plus one column per feature of the
        service (NaN where nothing was known).

    Raises:
        InvalidInputError: When a column is missing or the timestamps are naive.
        FeatureStoreError: When the repository or the service does not exist, or Feast fails.
    """
    missing = [column for column in ENTITY_COLUMNS if column not in entity_rows.columns]
    if missing:
        raise InvalidInputError(
            f"entity_rows: expected columns {', '.join(ENTITY_COLUMNS)}, missing {', '.join(missing)}"
        )
    import pandas as pd

    try:
        timestamps = pd.to_datetime(entity_rows["event_timestamp"])
    except (ValueError, TypeError) as error:
        raise InvalidInputError(f"entity_rows.event_timestamp: expected times, got {error}") from error
    if timestamps.dt.tz is None:
        raise InvalidInputError("entity_rows.event_timestamp: expected timezone-aware times, got naive")
    store = _store(repo_dir)
    service = _service(store, repo_dir, feature_service)
    # Feast fails on a source folder without files (a view nothing has written yet): such a
    # view's features are missing values.
    written = {view.name for view in store.list_feature_views() if _has_offline_data(repo_dir, view)}
    keys = list(ENTITY_COLUMNS)
    requests = entity_rows[keys].assign(event_timestamp=timestamps).drop_duplicates(ignore_index=True)
    frame = entity_rows.assign(event_timestamp=timestamps.dt.tz_convert(UTC))
    for projection in service.feature_view_projections:
        names = [feature.name for feature in projection.features]
        if projection.name not in written:
            frame = frame.assign(**dict.fromkeys(names, float("nan")))
            continue
        # One view per call, joined back onto every requested row: Feast 0.67's file store drops
        # an entity row when one view's values for its key are all newer than the row (losing
        # the other views' values too) and rows sharing keys and time (feast-dev/feast#6787).
        refs = [f"{projection.name_to_use()}:{name}" for name in names]
        try:
            found = store.get_historical_features(entity_df=requests, features=refs).to_df()
        except _store_errors() as error:
            raise FeatureStoreError(
                f"{repo_dir}: historical read failed ({type(error).__name__}: {error})"
            ) from error
        found["event_timestamp"] = pd.to_datetime(found["event_timestamp"], utc=True)
        frame = frame.merge(found[keys + names].drop_duplicates(subset=keys), on=keys, how="left")
    return frame


def list_feature_views(repo_dir: Path) -> list[tuple[str, list[str]]]:
    """Return each registered feature view's name and feature names, sorted by name."""
    store = _store(repo_dir)
    return sorted((view.name, [f.name for f in view.features]) for view in store.list_feature_views())


def _store_errors() -> tuple[type[Exception], ...]:
    """Return what Feast and its stores raise for bad data, bad config or a store that is down."""
    from feast.errors import FeastError

    errors: tuple[type[Exception], ...] = (FeastError, OSError, ValueError, KeyError, ConnectionError)
    try:
        from redis.exceptions import RedisError
    except ImportError:  # the redis client is optional: only the Redis online store needs it
        return errors
    return (*errors, RedisError)


def _has_offline_data(repo_dir: Path, view: Any) -> bool:
    """Return whether a view's parquet source holds a file (relative paths are under the repo)."""
    path = Path(view.batch_source.path)
    folder = path if path.is_absolute() else repo_dir / path
    return folder.is_file() or (folder.is_dir() and any(folder.glob("*.parquet")))


def _store(repo_dir: Path) -> FeatureStore:
    _check_repo(repo_dir)
    from feast import FeatureStore
    from feast.errors import FeastError

    try:
        return FeatureStore(repo_path=str(repo_dir))
    except (FeastError, OSError, ValueError) as error:
        raise FeatureStoreError(f"{repo_dir}: cannot open the feature store ({error})") from error


def _service(store: FeatureStore, repo_dir: Path, name: str) -> Any:
    from feast.errors import FeastObjectNotFoundException

    try:
        return store.get_feature_service(name)
    except FeastObjectNotFoundException as error:
        names: Sequence[str] = [s.name for s in store.list_feature_services()]
        raise FeatureStoreError(
            f"{repo_dir}: expected a feature service in [{', '.join(sorted(names))}] "
            f"(run `cvops features apply` first?), got {name!r}"
        ) from error


def _check_repo(repo_dir: Path) -> None:
    if not (repo_dir / CONFIG_FILE).is_file():
        raise FeatureStoreError(f"{repo_dir}: expected a feature repository with {CONFIG_FILE}, not found")


def _check_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None:
        raise InvalidInputError(f"{name}: expected a timezone-aware datetime, got naive {value}")
