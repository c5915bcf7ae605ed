"""Kubeflow pipeline definitions: DAG wiring only (compiled YAML is a build output)."""
