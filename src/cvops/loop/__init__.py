"""The continuous-training loop's steps: each function here is the one call a Kubeflow component makes."""
