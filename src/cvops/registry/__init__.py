"""Model registry: versions with lineage in MLflow, champion/challenger aliases with an audit trail.

Modules: :mod:`~cvops.registry.records` (lineage, versions, model URIs), :mod:`~cvops.registry.events`
(alias history and rollback), :mod:`~cvops.registry.retry` (bounded retries),
:mod:`~cvops.registry.mlflow_registry` (:class:`ModelRegistry`), :mod:`~cvops.registry.model_card`.
MLflow is imported inside functions only.
"""
