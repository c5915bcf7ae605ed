"""The `sync_labels` component."""
