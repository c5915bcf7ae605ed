"""Registry records: lineage, registered versions, model URIs, and their MLflow tag encoding.

Everything cvops knows about a version lives in the version's tags (prefix ``cvops.``), so one
``get_model_version`` call answers ``show`` and the model card:

=================================  ==========================================================
``cvops.lineage.<field>``          :class:`Lineage` fields (dataset version and URI, ...)
``cvops.metric.<key>``             evaluation metrics, ``repr`` of the float
``cvops.variants``                 comma-separated export variant names (``int8,fp16``)
``cvops.package.<field>``          summary of ``model.json`` (family, precision, input size)
``cvops.registration``             ``complete``: written last; a version without it is not
                                   promoted, downloaded or resolved
=================================  ==========================================================

Metric naming convention read by the model card: ``per_class/<class>/<metric>`` is a per-class
result, ``variant/<variant>/<metric>`` a result of an export variant (e.g.
``variant/int8/latency_ms_p50``); every other key is a headline metric.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime

from cvops.contracts.model_package import ModelPackageSpec
from cvops.errors import InvalidInputError

LINEAGE_PREFIX = "cvops.lineage."
METRIC_PREFIX = "cvops.metric."
PACKAGE_PREFIX = "cvops.package."
VARIANTS_TAG = "cvops.variants"
REGISTRATION_TAG = "cvops.registration"
REGISTRATION_COMPLETE = "complete"

PACKAGE_ARTIFACT = "package"
VARIANTS_ARTIFACT = "variants"
MODEL_CARD_ARTIFACT = "model_card"

# MLflow's rule for metric and tag names, minus the characters we never need.
_METRIC_KEY = re.compile(r"^[A-Za-z0-9_\-.:/ ]+$")
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
# Registered model names end up in URIs and folder names.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a usable registered model name.

    Raises:
        InvalidInputError: When it is empty or holds characters other than letters, digits,
            ``_``, ``-`` and ``.`` (it becomes part of URIs and folder names).
    """
    if not _MODEL_NAME.match(name):
        raise InvalidInputError(f"model name: expected letters, digits, '_', '-', '.', got {name!r}")
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if it is a usable alias (not a number: those name versions)."""
    if not _ALIAS.match(alias) or alias.lower() == "latest":
        raise InvalidInputError(f"alias: expected a name such as 'champion' (not 'latest'), got {alias!r}")
    return alias


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a model version came from. Every field is optional; unknown stays None.

    Attributes:
        dataset_version: Id of the dataset version it was trained on (e.g. a DVC/LakeFS id).
        dataset_uri: Where that dataset version lives.
        parent_version: The registered version it was fine-tuned from (``NAME/VERSION`` or a number).
        training_run_id: MLflow run id of the training run.
        code_revision: Git commit SHA of the training code.
        pipeline_run_id: Id of the pipeline run that produced it.
    """

    dataset_version: str | None = None
    dataset_uri: str | None = None
    parent_version: str | None = None
    training_run_id: str | None = None
    code_revision: str | None = None
    pipeline_run_id: str | None = None

    def to_tags(self) -> dict[str, str]:
        """Return the known fields as ``cvops.lineage.<field>`` tags."""
        tags: dict[str, str] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None and str(value).strip():
                tags[LINEAGE_PREFIX + item.name] = str(value)
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Lineage:
        """Read the ``cvops.lineage.*`` tags back (unknown keys are ignored)."""
        names = {item.name for item in fields(cls)}
        values = {
            key.removeprefix(LINEAGE_PREFIX): value
            for key, value in tags.items()
            if key.startswith(LINEAGE_PREFIX) and key.removeprefix(LINEAGE_PREFIX) in names
        }
        return cls(**values)


def check_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """Return metrics as plain floats after checking names and values.

    Raises:
        InvalidInputError: For a name MLflow would refuse or a value that is not finite.
    """
    checked: dict[str, float] = {}
    for key, value in metrics.items():
        if not _METRIC_KEY.match(key) or ".." in key or key.startswith("/"):
            raise InvalidInputError(f"metric name: expected letters, digits, '_-.:/ ', got {key!r}")
        number = float(value)
        if not math.isfinite(number):
            raise InvalidInputError(f"metric {key}: expected a finite number, got {value!r}")
        checked[key] = number
    return checked


def check_variant_name(name: str) -> str:
    """Return ``name`` if it is a usable export variant name (``int8``, ``fp16``, ``trt-a10``)."""
    if not _VARIANT_NAME.match(name):
        raise InvalidInputError(f"variant name: expected letters, digits, '_', '-', got {name!r}")
    return name


def package_tags(spec: ModelPackageSpec) -> dict[str, str]:
    """Return the ``cvops.package.*`` summary of a package's ``model.json``."""
    return {
        PACKAGE_PREFIX + "name": spec.name,
        PACKAGE_PREFIX + "family": spec.family,
        PACKAGE_PREFIX + "task": spec.task,
        PACKAGE_PREFIX + "format": spec.format,
        PACKAGE_PREFIX + "precision": spec.precision,
        PACKAGE_PREFIX + "input_size": f"{spec.input_width}x{spec.input_height}",
        PACKAGE_PREFIX + "class_count": str(len(spec.class_names)),
        # Short lists only: a tag holds at most 100,000 characters; the card reads model.json.
        PACKAGE_PREFIX + "class_names": ",".join(spec.class_names)[:5000],
    }


@dataclass(frozen=True, slots=True)
class RegisteredVersion:
    """One version of a registered model as cvops sees it.

    Attributes:
        name: Registered model name.
        version: Version number (MLflow's string over HTTP, int in sqlite: always int here).
        aliases: Aliases pointing at it now, sorted.
        run_id: The MLflow run holding its artifacts (``package/``, ``variants/<name>/``).
        source: Artifact URI of the package folder.
        created_at: When it was registered (UTC).
        lineage: Where it came from.
        metrics: Evaluation metrics given at registration.
        variants: Names of the export variants stored beside the package.
        package: Summary of ``model.json`` (``cvops.package.*`` tags without the prefix).
        is_complete: Whether registration finished (the ``cvops.registration`` tag is set).
    """

    name: str
    version: int
    aliases: tuple[str, ...]
    run_id: str
    source: str
    created_at: datetime
    lineage: Lineage
    metrics: Mapping[str, float] = field(default_factory=dict)
    variants: tuple[str, ...] = ()
    package: Mapping[str, str] = field(default_factory=dict)
    is_complete: bool = False

    @property
    def uri(self) -> str:
        """Return ``models:/NAME/VERSION``."""
        return f"models:/{self.name}/{self.version}"

    @classmethod
    def from_tags(
        cls,
        name: str,
        version: int,
        aliases: tuple[str, ...],
        run_id: str,
        source: str,
        created_at: datetime,
        tags: Mapping[str, str],
    ) -> RegisteredVersion:
        """Build the record from an MLflow model version's fields and tags."""
        metrics = {
            key.removeprefix(METRIC_PREFIX): float(value)
            for key, value in tags.items()
            if key.startswith(METRIC_PREFIX)
        }
        variants = tuple(part for part in tags.get(VARIANTS_TAG, "").split(",") if part)
        package = {
            key.removeprefix(PACKAGE_PREFIX): value
            for key, value in tags.items()
            if key.startswith(PACKAGE_PREFIX)
        }
        return cls(
            name=name,
            version=version,
            aliases=tuple(sorted(aliases)),
            run_id=run_id,
            source=source,
            created_at=created_at,
            lineage=Lineage.from_tags(tags),
            metrics=dict(sorted(metrics.items())),
            variants=variants,
            package=dict(sorted(package.items())),
            is_complete=tags.get(REGISTRATION_TAG) == REGISTRATION_COMPLETE,
        )


def version_tags(
    spec: ModelPackageSpec, lineage: Lineage, metrics: Mapping[str, float], variants: tuple[str, ...]
) -> dict[str, str]:
    """Return every tag a new version is created with (all but ``cvops.registration``)."""
    tags = {**lineage.to_tags(), **package_tags(spec)}
    tags.update({METRIC_PREFIX + key: repr(value) for key, value in metrics.items()})
    if variants:
        tags[VARIANTS_TAG] = ",".join(variants)
    return tags


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A registered model version named by number or by alias (exactly one of them)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        check_model_name(self.name)
        if (self.version is None) == (self.alias is None):
            raise InvalidInputError(f"{self.name}: expected a version or an alias, not both or neither")
        if self.version is not None and self.version < 1:
            raise InvalidInputError(f"version: expected >= 1, got {self.version}")
        if self.alias is not None:
            check_alias(self.alias)

    @property
    def uri(self) -> str:
        """Return ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``."""
        return (
            f"models:/{self.name}/{self.version}"
            if self.alias is None
            else f"models:/{self.name}@{self.alias}"
        )

    @classmethod
    def of(cls, name: str, version_or_alias: str | int) -> ModelRef:
        """Build a reference from a version number (``3``, ``"3"``) or an alias (``"champion"``)."""
        text = str(version_or_alias).strip()
        return cls(name, version=int(text)) if text.isdigit() else cls(name, alias=text)

    @classmethod
    def parse(cls, uri: str) -> ModelRef:
        """Parse ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

        Raises:
            InvalidInputError: For any other form (``models:/NAME/latest``, stages, run URIs).
        """
        match = re.fullmatch(r"models:/([^/@]+)(?:/(\d+)|@([^/@]+))", uri.strip())
        if match is None:
            raise InvalidInputError(
                f"model URI: expected models:/NAME/VERSION or models:/NAME@ALIAS, got {uri!r}"
            )
        name, version, alias = match.groups()
        return cls(name, version=int(version)) if version is not None else cls(name, alias=alias)
