"""The `deploy_canary` component."""
