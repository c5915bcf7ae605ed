"""Kubeflow Pipelines components of the continuous-training loop, one folder per step.

Each component is a signature plus one call into ``cvops.loop`` (see ../shared/STYLE.md §2).
"""

CVOPS_IMAGE = "ghcr.io/cvops/cvops-components:0.1.0"
"""The pipeline-components image (components/Dockerfile): cvops with kfp and the training extras."""
