"""Multi-object tracking: trackers turn per-frame Detections into tracks with stable ids."""
