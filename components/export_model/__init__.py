"""The `export_model` component."""
