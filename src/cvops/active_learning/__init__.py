"""Active learning: pick the unlabeled frames whose labels will teach a detector the most."""
