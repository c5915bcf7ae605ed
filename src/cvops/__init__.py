"""cvops: computer vision in production, from camera streams to the loop that improves models."""

from __future__ import annotations

__version__ = "0.1.0"
