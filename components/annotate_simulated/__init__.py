"""The `annotate_simulated` component."""
