"""The model registry on MLflow: register packages with lineage, move aliases with an audit trail.

A registered version is an MLflow model version whose source is the ``package/`` folder of an
MLflow run; export variants sit beside it under ``variants/<name>/``. Lineage, metrics and a
package summary are version tags (see :mod:`cvops.registry.records`); every alias move is an
event tag on the registered model (see :mod:`cvops.registry.events`).

Nothing half-registered: :meth:`ModelRegistry.register` undoes what it created when any step
fails (it deletes the versions created from its run, the registered model if it created it and
it is still empty, and the run). When even that cleanup cannot reach MLflow, what is left is
harmless: the ``cvops.registration=complete`` tag is written last, and a version without it is
never promoted, downloaded or resolved. The error names anything left behind.

MLflow is imported inside functions only: importing cvops never pulls it in.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cvops.contracts.model_package import read_model_package
from cvops.errors import ModelPackageError, RegistryError, RegistryNotFoundError, RegistryUnavailableError
from cvops.offline import default_state_dir
from cvops.registry.events import AliasEvent, events_from_tags, next_sequence, rollback_target
from cvops.registry.records import (
    MODEL_CARD_ARTIFACT,
    PACKAGE_ARTIFACT,
    REGISTRATION_COMPLETE,
    REGISTRATION_TAG,
    VARIANTS_ARTIFACT,
    Lineage,
    ModelRef,
    RegisteredVersion,
    check_alias,
    check_metrics,
    check_model_name,
    check_variant_name,
    version_tags,
)
from cvops.registry.retry import (
    NO_RETRY,
    RetryPolicy,
    call_with_retry,
    is_unreachable_error,
    mlflow_call_environment,
)
from cvops.serving.breaker import BreakerOpenError, CircuitBreaker

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

T = TypeVar("T")

CHAMPION = "champion"
CHALLENGER = "challenger"
DEFAULT_EXPERIMENT = "cvops-registry"
REGISTRATION_ID_TAG = "cvops.registration_id"
MODEL_CARD_TAG = "cvops.model_card"

_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"


def embedded_tracking_uri(state_dir: Path) -> str:
    """Return the embedded registry's URI: ``sqlite:///<state_dir>/mlflow/mlflow.db``."""
    return f"sqlite:///{(state_dir / 'mlflow' / 'mlflow.db').resolve()}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Created:
    """What one registration has created so far, for undoing it."""

    run_id: str | None = None
    model_created: bool = False
    versions: list[int] = field(default_factory=list)


class ModelRegistry:
    """Register model packages in MLflow and manage their ``champion``/``challenger`` aliases.

    Works against the embedded sqlite database (the default) or an ``mlflow server`` URL.
    Calls that cannot reach the server are retried with exponential backoff within
    ``retry``'s bounds, then raise :class:`~cvops.errors.RegistryUnavailableError`.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        state_dir: Path | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """Connect (lazily: no request is made here).

        Args:
            tracking_uri: An MLflow tracking URI (``http://host:5000``, ``sqlite:///path.db``).
                None: the embedded sqlite database under ``state_dir/mlflow``.
            state_dir: Folder for the embedded database and the download cache; default: the
                CLI's state folder (``CVOPS_STATE_DIR``, else ``~/.cache/cvops``).
            experiment: MLflow experiment holding the registration runs.
            retry: Retry policy for every MLflow call.
            breaker: Optional circuit breaker for long-running callers (serving): once MLflow
                was unreachable ``failure_threshold`` times, calls fail at once until its reset
                timeout passes, instead of each waiting out its retries.
            clock: Returns the current UTC time (for alias events); injectable for tests.
        """
        from mlflow import MlflowClient

        self.state_dir = state_dir if state_dir is not None else default_state_dir()
        self.tracking_uri = tracking_uri or embedded_tracking_uri(self.state_dir)
        # A sqlite store has no artifact server: artifacts go to a folder beside the database
        # (MLflow's own default would be ./mlruns of whatever the working directory is).
        self._artifact_root: Path | None = None
        if self.tracking_uri.startswith("sqlite:///"):
            database = Path(self.tracking_uri.removeprefix("sqlite:///"))
            database.parent.mkdir(parents=True, exist_ok=True)
            self._artifact_root = database.parent / "artifacts"
        self.experiment = experiment
        self.retry = retry or RetryPolicy()
        self._breaker = breaker
        self._clock = clock
        self._client: MlflowClient = MlflowClient(
            tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
        )

    # -- MLflow calls -------------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], T], policy: RetryPolicy | None = None) -> T:
        """Run one MLflow call with bounded retries; map MLflow's errors to cvops errors."""
        from mlflow.exceptions import MlflowException

        bounds = policy or self.retry

        def attempt() -> T:
            with mlflow_call_environment(bounds.request_timeout_s):
                return call()

        if self._breaker is not None:
            try:
                self._breaker.before_call()
            except BreakerOpenError as error:
                raise RegistryUnavailableError(f"model registry at {self.tracking_uri}: {error}") from error
        try:
            result = call_with_retry(
                attempt,
                what=what,
                where=self.tracking_uri,
                policy=bounds,
                is_transient=is_unreachable_error,
                retry_on=(MlflowException, OSError),
            )
        except RegistryUnavailableError:
            if self._breaker is not None:
                self._breaker.record_failure()
            raise
        except MlflowException as error:
            self._answered()
            if error.error_code == _NOT_FOUND:
                raise RegistryNotFoundError(f"{self.tracking_uri}: {what}: {error.message}") from error
            raise RegistryError(f"{self.tracking_uri}: {what}: {error.message}") from error
        except OSError as error:
            self._answered()
            raise RegistryError(f"{self.tracking_uri}: {what}: {error}") from error
        self._answered()
        return result

    def _answered(self) -> None:
        """Tell the breaker MLflow answered (even a refusal shows it is up)."""
        if self._breaker is not None:
            self._breaker.record_success()

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        client = self._client

        def get_or_create() -> str:
            found = client.get_experiment_by_name(self.experiment)
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    client.restore_experiment(found.experiment_id)
                return str(found.experiment_id)
            location = self._artifact_root.resolve().as_uri() if self._artifact_root else None
            try:
                return str(client.create_experiment(self.experiment, artifact_location=location))
            except MlflowException as error:  # a concurrent registration created it first
                if error.error_code != _ALREADY_EXISTS:
                    raise
                again = client.get_experiment_by_name(self.experiment)
                assert again is not None
                return str(again.experiment_id)

        return self._call(f"get or create experiment {self.experiment!r}", get_or_create)

    def _ensure_registered_model(self, name: str) -> bool:
        """Create the registered model unless it exists; return whether this call created it."""
        from mlflow.exceptions import MlflowException

        client = self._client

        def get_or_create() -> bool:
            try:
                client.get_registered_model(name)
                return False
            except MlflowException as error:
                if error.error_code != _NOT_FOUND:
                    raise
            try:
                client.create_registered_model(
                    name, description="Registered by cvops; alias history in the cvops.event.* tags."
                )
                return True
            except MlflowException as error:
                if error.error_code != _ALREADY_EXISTS:
                    raise
                return False

        return self._call(f"get or create registered model {name!r}", get_or_create)

    def _versions_of_run(self, name: str, run_id: str, policy: RetryPolicy | None = None) -> list[int]:
        found = self._call(
            f"search versions of {name!r} from run {run_id}",
            lambda: self._client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"),
            policy,
        )
        return sorted(int(version.version) for version in found)

    def _registered_model(self, name: str) -> RegisteredModel:
        check_model_name(name)
        return self._call(f"get registered model {name!r}", lambda: self._client.get_registered_model(name))

    def _model_version(self, ref: ModelRef) -> ModelVersion:
        if ref.alias is not None:
            alias = ref.alias
            return self._call(
                f"get {ref.uri}", lambda: self._client.get_model_version_by_alias(ref.name, alias)
            )
        return self._call(
            f"get {ref.uri}", lambda: self._client.get_model_version(ref.name, str(ref.version))
        )

    @staticmethod
    def _record(version: ModelVersion) -> RegisteredVersion:
        return RegisteredVersion.from_tags(
            name=version.name,
            version=int(version.version),
            aliases=tuple(version.aliases or ()),
            run_id=version.run_id or "",
            source=version.source or "",
            created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, UTC),
            tags=dict(version.tags or {}),
        )

    # -- registration -------------------------------------------------------------------------

    def register(
        self,
        package_dir: Path,
        name: str,
        lineage: Lineage | None = None,
        metrics: Mapping[str, float] | None = None,
        variants: Mapping[str, Path] | None = None,
    ) -> RegisteredVersion:
        """Store a model package (and its export variants) as a new version of ``name``.

        Steps: one MLflow run per registration holds ``package/`` and ``variants/<name>/`` as
        artifacts, the metrics and the lineage as run tags; the registered model is created if
        needed; the version is created from ``package/`` with lineage, metric, variant and
        package tags; the run is finished; ``cvops.registration=complete`` is tagged last.
        If any step fails, what was created is removed (see the module doc).

        Args:
            package_dir: A model package folder (``model.json`` + model file).
            name: Registered model name (letters, digits, ``_-.``).
            lineage: Where the model came from; stored as ``cvops.lineage.*`` tags.
            metrics: Evaluation results; ``per_class/<class>/<metric>`` and
                ``variant/<variant>/<metric>`` keys are read by the model card.
            variants: Export variants by name (``{"int8": Path(...)}``), each a model package.

        Returns:
            The new version, complete.

        Raises:
            ModelPackageError: When the package or a variant breaks the package contract
                (checked before anything is written).
            InvalidInputError: For a bad model, metric or variant name or a non-finite metric.
            RegistryUnavailableError: When MLflow stayed unreachable; what was created is undone.
            RegistryError: When MLflow refused a step; what was created is undone.
        """
        check_model_name(name)
        spec = read_model_package(package_dir)
        checked_metrics = check_metrics(metrics or {})
        variant_dirs = {check_variant_name(key): Path(path) for key, path in (variants or {}).items()}
        for variant, path in variant_dirs.items():
            try:
                read_model_package(path)
            except ModelPackageError as error:
                raise ModelPackageError(f"variant {variant}: {error}") from error
        lineage = lineage or Lineage()
        tags = version_tags(spec, lineage, checked_metrics, tuple(variant_dirs))
        created = _Created()
        try:
            return self._register(package_dir, name, lineage, checked_metrics, variant_dirs, tags, created)
        except BaseException as error:
            # Undo, then re-raise the original error; leftovers are named on it.
            leftovers = self._undo(name, created)
            if leftovers:
                error.add_note(
                    f"cleanup could not remove: {', '.join(leftovers)} (never promoted: "
                    f"{REGISTRATION_TAG} is not set)"
                )
            raise

    def _register(
        self,
        package_dir: Path,
        name: str,
        lineage: Lineage,
        metrics: dict[str, float],
        variant_dirs: dict[str, Path],
        tags: dict[str, str],
        created: _Created,
    ) -> RegisteredVersion:
        from mlflow.entities import Metric

        client = self._client
        registration_id = uuid.uuid4().hex
        experiment_id = self._experiment_id()
        run_tags = {**lineage.to_tags(), REGISTRATION_ID_TAG: registration_id, "cvops.model_name": name}
        run = self._call(
            "create run",
            lambda: client.create_run(experiment_id, tags=run_tags, run_name=f"register-{name}"),
        )
        run_id = run.info.run_id
        created.run_id = run_id
        self._call("upload package", lambda: client.log_artifacts(run_id, str(package_dir), PACKAGE_ARTIFACT))
        for variant, path in variant_dirs.items():
            destination = f"{VARIANTS_ARTIFACT}/{variant}"
            self._call(
                f"upload variant {variant}", partial(client.log_artifacts, run_id, str(path), destination)
            )
        if metrics:
            stamp_ms = int(time.time() * 1000)
            batch = [Metric(key, value, stamp_ms, 0) for key, value in metrics.items()]
            self._call("log metrics", lambda: client.log_batch(run_id, metrics=batch))
        created.model_created = self._ensure_registered_model(name)
        source = f"{run.info.artifact_uri}/{PACKAGE_ARTIFACT}"
        all_tags = {**tags, REGISTRATION_ID_TAG: registration_id}
        version = self._call(
            "create model version",
            lambda: client.create_model_version(name, source, run_id, tags=all_tags, await_creation_for=0),
        )
        number = int(version.version)
        created.versions.append(number)
        # A retried create whose first response was lost would leave a twin from the same run.
        for twin in self._versions_of_run(name, run_id):
            if twin != number:
                self._call(
                    f"delete duplicate version {twin}", partial(client.delete_model_version, name, str(twin))
                )
        self._call("finish run", lambda: client.set_terminated(run_id, "FINISHED"))
        # Last: from here on the version may be promoted, downloaded and resolved.
        self._call(
            "mark the version complete",
            lambda: client.set_model_version_tag(name, str(number), REGISTRATION_TAG, REGISTRATION_COMPLETE),
        )
        return RegisteredVersion.from_tags(
            name=name,
            version=number,
            aliases=(),
            run_id=run_id,
            source=source,
            created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, UTC),
            tags={**all_tags, REGISTRATION_TAG: REGISTRATION_COMPLETE},
        )

    def _undo(self, name: str, created: _Created) -> list[str]:
        """Remove what a failed registration created; return what could not be removed."""
        leftovers: list[str] = []
        client = self._client
        versions = set(created.versions)
        if created.run_id is not None:
            # When listing fails, delete what this call knows it created.
            with suppress(RegistryError, RegistryUnavailableError):
                versions |= set(self._versions_of_run(name, created.run_id, NO_RETRY))
        for number in sorted(versions):
            try:
                self._call(
                    f"delete version {number}",
                    partial(client.delete_model_version, name, str(number)),
                    NO_RETRY,
                )
            except RegistryNotFoundError:
                pass
            except (RegistryError, RegistryUnavailableError):
                leftovers.append(f"models:/{name}/{number}")
        if created.model_created and not leftovers:
            try:
                remaining = self._call(
                    f"search versions of {name!r}",
                    lambda: client.search_model_versions(f"name = '{name}'"),
                    NO_RETRY,
                )
                if not remaining:
                    self._call(
                        f"delete registered model {name!r}",
                        lambda: client.delete_registered_model(name),
                        NO_RETRY,
                    )
            except (RegistryError, RegistryUnavailableError):
                leftovers.append(f"registered model {name!r} (empty)")
        if created.run_id is not None:
            run_id = created.run_id
            try:
                self._call(f"delete run {run_id}", lambda: client.delete_run(run_id), NO_RETRY)
            except (RegistryError, RegistryUnavailableError):
                leftovers.append(f"run {run_id}")
        return leftovers

    # -- reading ------------------------------------------------------------------------------

    def show(self, name: str, version_or_alias: str | int) -> RegisteredVersion:
        """Return one version, named by number (``3``) or alias (``champion``).

        Raises:
            RegistryNotFoundError: When the model, version or alias does not exist.
        """
        return self._record(self._model_version(ModelRef.of(name, version_or_alias)))

    def version_tags(self, name: str, version_or_alias: str | int) -> dict[str, str]:
        """Return every tag of one version (ours and anyone else's), named by number or alias.

        Raises:
            RegistryNotFoundError: When the model, version or alias does not exist.
        """
        return dict(self._model_version(ModelRef.of(name, version_or_alias)).tags or {})

    def set_version_tags(
        self, name: str, version_or_alias: str | int, tags: Mapping[str, str]
    ) -> RegisteredVersion:
        """Set tags on one version (an alias is resolved first) and return the version.

        Raises:
            RegistryNotFoundError: When the model, version or alias does not exist.
        """
        record = self.show(name, version_or_alias)
        for key, value in tags.items():
            self._call(
                f"tag {record.uri} with {key}",
                partial(self._client.set_model_version_tag, name, str(record.version), key, value),
            )
        return record

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Return the alias events of ``name``, oldest first (only ``alias``'s when given)."""
        events = events_from_tags(self._registered_model(name).tags)
        return [event for event in events if alias is None or event.alias == alias]

    def aliases(self, name: str) -> dict[str, int]:
        """Return where each alias of ``name`` points now."""
        return {alias: int(version) for alias, version in self._registered_model(name).aliases.items()}

    # -- alias moves --------------------------------------------------------------------------

    def promote(
        self,
        name: str,
        version: int | str,
        who: str,
        why: str,
        evidence: Mapping[str, object] | None = None,
        alias: str = CHAMPION,
    ) -> AliasEvent:
        """Point ``alias`` at ``version`` and record the move.

        A version promoted to ``champion`` gives up the ``challenger`` alias if it held it
        (recorded as a ``retire`` event). The event is written before the alias moves, so no
        move goes unrecorded; if the move then fails, the event is deleted again.

        Args:
            name: Registered model name.
            version: The version to promote.
            who: Person or pipeline deciding.
            why: The reason, in words.
            evidence: JSON-serializable facts (metrics, evaluation report URI).
            alias: ``champion`` (default), ``challenger`` or another alias.

        Raises:
            RegistryError: When the version's registration is incomplete or the alias already
                points at it.
            RegistryNotFoundError: When the model or version does not exist.
        """
        check_alias(alias)
        target = self._record(self._model_version(ModelRef.of(name, version)))
        if not target.is_complete:
            raise RegistryError(
                f"{target.uri}: registration incomplete ({REGISTRATION_TAG} missing); not promoted"
            )
        model = self._registered_model(name)
        current = _optional_version(model.aliases.get(alias))
        if current == target.version:
            raise RegistryError(f"{name}: {alias} already points to version {target.version}")
        events = events_from_tags(model.tags)
        event = self._new_event(events, alias, "promote", current, target.version, who, why, evidence)
        self._move(name, event)
        if alias == CHAMPION and CHALLENGER in target.aliases:
            retire = self._new_event(
                [*events, event],
                CHALLENGER,
                "retire",
                target.version,
                None,
                who,
                f"promoted to {CHAMPION}: {why}",
                {},
            )
            self._move(name, retire)
        return event

    def rollback(
        self,
        name: str,
        who: str,
        why: str,
        alias: str = CHAMPION,
        evidence: Mapping[str, object] | None = None,
    ) -> AliasEvent:
        """Point ``alias`` back at the version it held before its last promotion, in one call.

        The target comes from the event history (see :func:`~cvops.registry.events.rollback_target`),
        so repeated rollbacks walk further back.

        Raises:
            RegistryError: When the history holds no earlier version, or it is incomplete.
        """
        check_alias(alias)
        model = self._registered_model(name)
        events = events_from_tags(model.tags)
        target = rollback_target(events, alias)
        if target is None:
            raise RegistryError(f"{name}: no earlier {alias} in the alias history to roll back to")
        record = self.show(name, target)
        if not record.is_complete:
            raise RegistryError(f"{record.uri}: registration incomplete; not restored as {alias}")
        current = _optional_version(model.aliases.get(alias))
        event = self._new_event(events, alias, "rollback", current, target, who, why, evidence)
        self._move(name, event)
        return event

    def retire(
        self, name: str, alias: str, who: str, why: str, evidence: Mapping[str, object] | None = None
    ) -> AliasEvent:
        """Remove ``alias`` (e.g. a rejected ``challenger``) and record a ``retire`` event.

        Raises:
            RegistryNotFoundError: When the model or the alias does not exist.
        """
        check_alias(alias)
        model = self._registered_model(name)
        current = _optional_version(model.aliases.get(alias))
        if current is None:
            raise RegistryNotFoundError(f"{name}: no {alias!r} alias to retire")
        event = self._new_event(
            events_from_tags(model.tags), alias, "retire", current, None, who, why, evidence
        )
        self._move(name, event)
        return event

    def _new_event(
        self,
        events: list[AliasEvent],
        alias: str,
        action: str,
        from_version: int | None,
        to_version: int | None,
        who: str,
        why: str,
        evidence: Mapping[str, object] | None,
    ) -> AliasEvent:
        return AliasEvent(
            sequence=next_sequence(events),
            event_id=uuid.uuid4().hex[:12],
            alias=alias,
            action=action,  # type: ignore[arg-type]  # checked in AliasEvent.__post_init__
            from_version=from_version,
            to_version=to_version,
            who=who,
            why=why,
            at=self._clock(),
            evidence=dict(evidence or {}),
        )

    def _move(self, name: str, event: AliasEvent) -> None:
        """Record ``event``, then move its alias; delete the record if the move fails."""
        client = self._client
        self._call(
            f"record {event.alias} event",
            lambda: client.set_registered_model_tag(name, event.tag_key, event.to_json()),
        )
        try:
            if event.to_version is None:
                self._call(
                    f"remove alias {event.alias}",
                    lambda: client.delete_registered_model_alias(name, event.alias),
                )
            else:
                to_version = str(event.to_version)
                self._call(
                    f"set alias {event.alias}",
                    lambda: client.set_registered_model_alias(name, event.alias, to_version),
                )
        except BaseException as error:
            try:
                self._call(
                    "withdraw the event",
                    lambda: client.delete_registered_model_tag(name, event.tag_key),
                    NO_RETRY,
                )
            except (RegistryError, RegistryUnavailableError):
                error.add_note(f"the alias did not move but event {event.tag_key} stays in the history")
            raise

    # -- packages out -------------------------------------------------------------------------

    def download(
        self, name: str, version_or_alias: str | int, dest: Path, variant: str | None = None
    ) -> Path:
        """Download a version's package (or one of its export variants) into ``dest``.

        Args:
            name: Registered model name.
            version_or_alias: ``3`` or ``champion``.
            dest: Folder to create; must not exist or be empty.
            variant: An export variant's name instead of the main package.

        Returns:
            ``dest``, a model package folder ready for ``load_detector``.

        Raises:
            RegistryError: When the version is incomplete, has no such variant, or ``dest``
                is a non-empty folder.
            ModelPackageError: When the downloaded files break the package contract.
        """
        record = self.show(name, version_or_alias)
        return self._download(record, dest, variant)

    def _download(self, record: RegisteredVersion, dest: Path, variant: str | None) -> Path:
        if not record.is_complete:
            raise RegistryError(f"{record.uri}: registration incomplete; not downloaded")
        if variant is not None and variant not in record.variants:
            raise RegistryError(f"{record.uri}: no variant {variant!r}; it has {list(record.variants)}")
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise RegistryError(f"{dest}: expected a missing or empty folder to download into")
        artifact = PACKAGE_ARTIFACT if variant is None else f"{VARIANTS_ARTIFACT}/{variant}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Download beside dest, then rename: a reader never sees half a package.
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            local = Path(
                self._call(
                    f"download {record.uri} {artifact}",
                    lambda: self._client.download_artifacts(record.run_id, artifact, str(staging)),
                )
            )
            read_model_package(local)
            if dest.exists():
                dest.rmdir()
            os.replace(local, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dest

    def resolve(self, uri: str, cache_dir: Path | None = None) -> Path:
        """Return a local package folder for ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

        The alias is resolved on every call; the package of a version (immutable) is downloaded
        once into ``cache_dir/NAME/VERSION-RUN_ID`` (default ``state_dir/registry-cache``): the
        run id keeps two registries' ``NAME/VERSION`` sharing one state folder apart.
        """
        ref = ModelRef.parse(uri)
        record = self._record(self._model_version(ref))
        folder = (
            (cache_dir or self.state_dir / "registry-cache")
            / record.name
            / f"{record.version}-{record.run_id}"
        )
        if (folder / "model.json").is_file():
            read_model_package(folder)
            return folder
        try:
            return self._download(record, folder, None)
        except (OSError, RegistryError):
            if (folder / "model.json").is_file():  # a concurrent resolver renamed its copy first
                return folder
            raise

    def log_model_card(self, record: RegisteredVersion, files: list[Path]) -> str:
        """Store model card files as artifacts of the version's run; return their artifact URI."""
        client = self._client
        for path in files:
            self._call(
                f"upload {path.name}",
                partial(client.log_artifact, record.run_id, str(path), MODEL_CARD_ARTIFACT),
            )
        artifact_uri = f"runs:/{record.run_id}/{MODEL_CARD_ARTIFACT}"
        self._call(
            "tag the model card",
            lambda: client.set_model_version_tag(
                record.name, str(record.version), MODEL_CARD_TAG, artifact_uri
            ),
        )
        return artifact_uri


def _optional_version(value: object) -> int | None:
    return None if value is None else int(str(value))


def resolve_model_uri(uri: str, tracking_uri: str | None = None, cache_dir: Path | None = None) -> Path:
    """Return a local model package folder for a ``models:/`` URI (see :meth:`ModelRegistry.resolve`)."""
    return ModelRegistry(tracking_uri).resolve(uri, cache_dir)
