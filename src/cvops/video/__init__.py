"""Cameras to detections and tracks: sources, bounded queues, the pipeline, sinks."""
