"""The `push_to_labelstudio` component."""
