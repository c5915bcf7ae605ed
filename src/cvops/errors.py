"""The cvops exception hierarchy, drawn in one place.

Every error raised on purpose by cvops derives from :class:`CvopsError`. Subclasses also
inherit the builtin they refine, so callers that only know Python's builtins still catch them.
Adapters map them: the CLI to a one-line message and a non-zero exit, serving to HTTP codes.
"""

from __future__ import annotations


class CvopsError(Exception):
    """Root of every error cvops raises on purpose."""


class InvalidDetectionsError(CvopsError, ValueError):
    """A Detections record was built from arrays of the wrong shape, type or range."""


class ImageReadError(CvopsError, ValueError):
    """A file could not be read as an image (missing, empty, truncated or not an image)."""


class ImageTooLargeError(ImageReadError):
    """An image declares more pixels than allowed (a guard against decompression bombs)."""


class ModelPackageError(CvopsError, ValueError):
    """A model package is missing a file or its ``model.json`` does not match the contract."""


class BackendUnavailableError(CvopsError, ImportError):
    """An optional runtime (TensorRT, CUDA, Ultralytics) is not installed on this machine."""


class ExportError(CvopsError, RuntimeError):
    """Exporting or quantizing a model failed."""


class InvalidInputError(CvopsError, ValueError):
    """An argument given by a caller is out of its allowed range or of the wrong form."""


class SourceOpenError(CvopsError, OSError):
    """A video source (file, stream, camera, folder) cannot be opened."""


class RemoteDetectorError(CvopsError, ConnectionError):
    """A remote detector (KServe endpoint) failed to answer after its retries."""


class DatasetError(CvopsError, ValueError):
    """A dataset file is malformed: bad JSON or YAML, a label out of range, a missing image."""


class DatasetFetchError(CvopsError, OSError):
    """A dataset could not be fetched (HTTP error, unreachable host, unreadable archive)."""


class DatasetNotFoundError(DatasetFetchError, FileNotFoundError):
    """A dataset does not exist where it was looked for (missing path, HTTP 404, missing key)."""


class RegistryError(CvopsError, RuntimeError):
    """The model registry refused an operation: unknown model or version, nothing to roll back to."""


class RegistryUnavailableError(CvopsError, ConnectionError):
    """The model registry (an MLflow tracking server) did not answer after bounded retries."""


class RegistryNotFoundError(RegistryError, LookupError):
    """A registered model, version or alias does not exist in the model registry."""


class TrainingError(CvopsError, RuntimeError):
    """A training rank failed, or the launcher could not start or finish the run."""


class AnnotationServerError(CvopsError, RuntimeError):
    """The annotation server (Label Studio) refused a request, or could not be started or stopped."""


class AnnotationUnavailableError(CvopsError, ConnectionError):
    """The annotation server (Label Studio) did not answer after bounded retries."""


class AnnotationTimeoutError(CvopsError, TimeoutError):
    """Fewer annotations than asked for were completed before the wait ran out."""


class RolloutError(CvopsError, RuntimeError):
    """A canary deployment cannot be started, found, updated or stopped, or the A/B gate cannot act."""


class FeatureStoreError(CvopsError, RuntimeError):
    """The Feast feature store refused an operation: a bad repository, a failed apply or materialize."""


class MetricsPushError(CvopsError, ConnectionError):
    """Metrics could not be pushed to a Prometheus Pushgateway (unreachable, or it refused them)."""


class PipelineError(CvopsError, RuntimeError):
    """A pipeline could not be compiled, run or submitted (a failed step, an unreachable Kubeflow API)."""
