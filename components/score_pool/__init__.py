"""The `score_pool` component."""
