"""Running the Kubeflow pipelines of ``pipelines/``: compile, run locally with kfp.local, submit."""
