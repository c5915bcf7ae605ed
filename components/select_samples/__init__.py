"""The `select_samples` component."""
