"""Feast entities of cvops: a camera, and a frame of a camera."""

from feast import Entity, ValueType

camera = Entity(
    name="camera",
    join_keys=["camera_id"],
    value_type=ValueType.STRING,
    description="One video source (camera, stream or file) by its cvops camera id.",
)

frame = Entity(
    name="frame",
    join_keys=["frame_index"],
    value_type=ValueType.INT64,
    description="A decoded frame of a camera, by its 0-based index in that source (used with camera).",
)
