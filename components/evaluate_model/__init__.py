"""The `evaluate_model` component."""
