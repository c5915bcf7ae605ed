"""Camera-motion compensation (CMC): how the image moved between two frames of a moving camera.

A tracker predicts each track's box in the previous frame's pixel coordinates; when the camera
pans, zooms or shakes, every box shifts although no object moved, and IoU matching fails.
:class:`SparseFlowCompensator` estimates a similarity transform (rotation, uniform scale,
translation) from the previous frame to the current one with sparse optical flow, as BoT-SORT's
``sparseOptFlow`` does: corners in the previous frame (``cv2.goodFeaturesToTrack``), followed into
the current frame by pyramidal Lucas-Kanade, fitted with RANSAC (``cv2.estimateAffinePartial2D``),
all on a grayscale copy ``downscale`` times smaller.

What a tracker should do with the affine ``A = [M | t]`` (2x3) of each new frame, before
associating: for a Kalman state ``cx, cy, w, h`` and their velocities,

- centers: ``[cx, cy] <- M @ [cx, cy] + t`` (:func:`warp_cxcywh` does this and the next line);
- sizes: ``w, h <- s * w, s * h`` with ``s = sqrt(|det M|)``, the transform's scale;
- velocities: ``[vx, vy] <- M @ [vx, vy]`` (no translation), ``vw, vh <- s * vw, s * vh``;
- covariances: ``P <- T P T^T`` with ``T`` the same linear map on the state (block-diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError

FloatArray = npt.NDArray[np.float32]
AffineArray = npt.NDArray[np.float32]


def identity_affine() -> AffineArray:
    """Return the 2x3 affine that leaves every point where it is."""
    return np.eye(2, 3, dtype=np.float32)


@dataclass(slots=True)
class SparseFlowCompensator:
    """Estimates the previous-frame -> current-frame affine of one stream, frame by frame.

    One instance per stream: it keeps the previous frame's downscaled image and corners.

    Attributes:
        max_corners: Most corners followed from one frame to the next.
        downscale: Factor the frame is shrunk by before any work, >= 1 (4: 1920x1080 -> 480x270).
        quality_level: Corner strength relative to the strongest, ``goodFeaturesToTrack``.
        min_distance_px: Minimum spacing of corners, in downscaled pixels.
        min_points: Fewest RANSAC inliers to trust an estimate; below, the identity is returned.
        ransac_threshold_px: RANSAC reprojection threshold, in downscaled pixels.
    """

    max_corners: int = 200
    downscale: float = 4.0
    quality_level: float = 0.01
    min_distance_px: float = 8.0
    min_points: int = 10
    ransac_threshold_px: float = 1.0
    _previous_gray: npt.NDArray[np.uint8] | None = field(default=None, init=False, repr=False)
    _previous_points: FloatArray | None = field(default=None, init=False, repr=False)
    _frame_hw: tuple[int, int] = field(default=(0, 0), init=False, repr=False)

    def __post_init__(self) -> None:
        """Reject out-of-range settings."""
        if self.max_corners < 1:
            raise InvalidInputError(f"max_corners: expected >= 1, got {self.max_corners}")
        if not self.downscale >= 1.0:
            raise InvalidInputError(f"downscale: expected >= 1, got {self.downscale}")
        if not 0.0 < self.quality_level < 1.0:
            raise InvalidInputError(f"quality_level: expected a value in (0, 1), got {self.quality_level}")
        if self.min_points < 3:
            raise InvalidInputError(f"min_points: expected >= 3, got {self.min_points}")
        if not self.ransac_threshold_px > 0:
            raise InvalidInputError(f"ransac_threshold_px: expected > 0, got {self.ransac_threshold_px}")

    def reset(self) -> None:
        """Forget the previous frame (the next call returns the identity)."""
        self._previous_gray, self._previous_points, self._frame_hw = None, None, (0, 0)

    def estimate(
        self, frame_bgr: npt.NDArray[np.uint8], exclude_xyxy: FloatArray | None = None
    ) -> AffineArray:
        """Return the affine mapping the previous frame's pixel coordinates to this frame's.

        Args:
            frame_bgr: The current frame, shape (H, W, 3) BGR or (H, W) grayscale, uint8.
            exclude_xyxy: Optional boxes of this frame, shape (N, 4), ``x1, y1, x2, y2`` pixels,
                where no corner is taken (moving objects would pull the estimate their way).

        Returns:
            Shape (2, 3), float32, ``[M | t]``: a point ``p`` of the previous frame is at
            ``M @ p + t`` in this one. The identity on the first frame, after a change of frame
            size, and when too few corners are found or followed.

        Raises:
            InvalidInputError: When the frame is not a uint8 image.
        """
        gray, scale_xy = self._prepare(frame_bgr)
        previous_gray, previous_points = self._previous_gray, self._previous_points
        is_same_size = self._frame_hw == frame_bgr.shape[:2]
        self._previous_gray, self._frame_hw = gray, (int(frame_bgr.shape[0]), int(frame_bgr.shape[1]))
        self._previous_points = self._corners(gray, scale_xy, exclude_xyxy)
        if previous_gray is None or previous_points is None or not is_same_size:
            return identity_affine()
        affine_small = self._track(previous_gray, gray, previous_points)
        if affine_small is None:
            return identity_affine()
        return _to_full_resolution(affine_small, scale_xy)

    def _prepare(self, frame: object) -> tuple[npt.NDArray[np.uint8], tuple[float, float]]:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            raise InvalidInputError(f"frame_bgr: expected a uint8 numpy image, got {type(frame).__name__}")
        if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)) or min(frame.shape[:2]) < 1:
            raise InvalidInputError(f"frame_bgr: expected shape (H, W, 3) or (H, W), got {frame.shape}")
        height, width = frame.shape[:2]
        size = (max(round(width / self.downscale), 1), max(round(height / self.downscale), 1))
        # Shrink first, then convert: the colour conversion then runs on 1/downscale^2 of the pixels.
        small = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR) if size != (width, height) else frame
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return np.ascontiguousarray(gray), (width / size[0], height / size[1])

    def _corners(
        self, gray: npt.NDArray[np.uint8], scale_xy: tuple[float, float], exclude_xyxy: FloatArray | None
    ) -> FloatArray | None:
        mask = None
        if exclude_xyxy is not None and len(exclude_xyxy):
            mask = np.full(gray.shape, 255, np.uint8)
            boxes = np.asarray(exclude_xyxy, np.float64).reshape(-1, 4) / np.array(scale_xy * 2)
            for x1, y1, x2, y2 in np.round(boxes).astype(np.int64).tolist():
                mask[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = 0
        points = cv2.goodFeaturesToTrack(
            gray, self.max_corners, self.quality_level, self.min_distance_px, mask=mask, blockSize=3
        )
        if points is None or len(points) < self.min_points:
            return None
        return points.astype(np.float32)

    def _track(
        self, previous: npt.NDArray[np.uint8], current: npt.NDArray[np.uint8], points: FloatArray
    ) -> npt.NDArray[np.float64] | None:
        followed, status, _ = cv2.calcOpticalFlowPyrLK(
            previous, current, points, np.empty_like(points), winSize=(15, 15), maxLevel=2
        )
        is_found = status.reshape(-1) == 1
        if is_found.sum() < self.min_points:
            return None
        affine, inliers = cv2.estimateAffinePartial2D(
            points[is_found],
            followed[is_found],
            method=cv2.RANSAC,
            ransacReprojThreshold=self.ransac_threshold_px,
        )
        if affine is None or inliers is None or int(inliers.sum()) < self.min_points:
            return None
        return np.asarray(affine, np.float64)


def warp_cxcywh(boxes_cxcywh: FloatArray, affine: AffineArray) -> FloatArray:
    """Move boxes by an affine: centers through it, widths and heights times its scale.

    Args:
        boxes_cxcywh: Shape (N, 4), center x, center y, width, height in pixels.
        affine: Shape (2, 3), ``[M | t]``, e.g. from :meth:`SparseFlowCompensator.estimate`.

    Returns:
        Shape (N, 4), float32. Sizes are scaled by ``sqrt(|det M|)``, so boxes stay axis-aligned
        and are not inflated by the small rotations of a hand-held camera.
    """
    return _warp(_check_boxes("boxes_cxcywh", boxes_cxcywh), _check_affine(affine)).astype(np.float32)


def warp_boxes_xyxy(xyxy: FloatArray, affine: AffineArray) -> FloatArray:
    """Move ``x1, y1, x2, y2`` boxes (N, 4) by an affine (2, 3), as :func:`warp_cxcywh` does."""
    boxes = _check_boxes("xyxy", xyxy)
    size = boxes[:, 2:] - boxes[:, :2]
    warped = _warp(np.concatenate([boxes[:, :2] + size / 2, size], axis=1), _check_affine(affine))
    half = warped[:, 2:] / 2
    return np.concatenate([warped[:, :2] - half, warped[:, :2] + half], axis=1).astype(np.float32)


def _warp(boxes_cxcywh: npt.NDArray[np.float64], matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    warped = np.empty_like(boxes_cxcywh)
    warped[:, :2] = boxes_cxcywh[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    warped[:, 2:] = boxes_cxcywh[:, 2:] * np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    return warped


def _to_full_resolution(affine_small: npt.NDArray[np.float64], scale_xy: tuple[float, float]) -> AffineArray:
    """Conjugate an affine on the downscaled image by the resize map: full -> small -> A -> full."""
    sx, sy = scale_xy
    # cv2.resize samples small pixel (x, y) at full-image ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5).
    to_full = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    small = np.vstack([affine_small, [0.0, 0.0, 1.0]])
    full: npt.NDArray[np.float64] = to_full @ small @ np.linalg.inv(to_full)
    return full[:2].astype(np.float32)


def _check_boxes(name: str, boxes: object) -> npt.NDArray[np.float64]:
    if not isinstance(boxes, np.ndarray) or boxes.ndim != 2 or boxes.shape[1] != 4:
        shape = boxes.shape if isinstance(boxes, np.ndarray) else type(boxes).__name__
        raise InvalidInputError(f"{name}: expected a numpy array of shape (N, 4), got {shape}")
    return boxes.astype(np.float64)


def _check_affine(affine: object) -> npt.NDArray[np.float64]:
    if not isinstance(affine, np.ndarray) or affine.shape != (2, 3) or not np.isfinite(affine).all():
        shape = affine.shape if isinstance(affine, np.ndarray) else type(affine).__name__
        raise InvalidInputError(f"affine: expected a finite numpy array of shape (2, 3), got {shape}")
    return affine.astype(np.float64)
