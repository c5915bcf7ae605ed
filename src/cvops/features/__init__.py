"""Per-frame features: image statistics and detection summaries, for Feast, selection and drift."""
