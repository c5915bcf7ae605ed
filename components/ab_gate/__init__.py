"""The `ab_gate` component."""
