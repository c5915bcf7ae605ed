"""The `pull_dataset` component."""
