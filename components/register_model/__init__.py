"""The `register_model` component."""
