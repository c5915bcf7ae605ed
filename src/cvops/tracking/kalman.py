"""A constant-velocity Kalman filter for many boxes at once.

The state of a box is ``cx, cy, a, h`` (center in pixels, aspect ratio w/h, height in pixels) and
their velocities per frame, as in SORT/ByteTrack; noise scales with the box height. Every function
takes and returns stacked arrays, mean ``(N, 8)`` and covariance ``(N, 8, 8)``, so a tracker
predicts and updates all of its tracks in a few numpy calls instead of one Python call per track.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_NDIM = 4
_TRANSITION = np.eye(2 * _NDIM)
_TRANSITION[:_NDIM, _NDIM:] = np.eye(_NDIM)
_DIAGONAL = np.arange(2 * _NDIM)


def xyxy_to_xyah(xyxy: npt.NDArray[np.floating]) -> FloatArray:
    """Return boxes ``(N, 4)`` as center x, center y, aspect ratio w/h, height."""
    boxes = np.asarray(xyxy, np.float64)
    out = np.empty_like(boxes)
    w = boxes[:, 2] - boxes[:, 0]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    out[:, 0] = boxes[:, 0] + w / 2
    out[:, 1] = boxes[:, 1] + h / 2
    out[:, 2] = w / h
    out[:, 3] = h
    return out


def xyah_to_xyxy(xyah: npt.NDArray[np.floating]) -> FloatArray:
    """Return boxes ``(N, 4)`` given as center x, center y, aspect ratio, height in ``x1, y1, x2, y2``."""
    boxes = np.asarray(xyah, np.float64)
    out = np.empty_like(boxes)
    h = np.maximum(boxes[:, 3], 0.0)
    w = np.maximum(boxes[:, 2], 0.0) * h
    out[:, 0] = boxes[:, 0] - w / 2
    out[:, 1] = boxes[:, 1] - h / 2
    out[:, 2] = out[:, 0] + w
    out[:, 3] = out[:, 1] + h
    return out


@dataclass(frozen=True, slots=True)
class KalmanBoxFilter:
    """Constant-velocity motion model with height-relative noise.

    Attributes:
        position_noise: Standard deviation of position per frame, as a fraction of box height.
        velocity_noise: Standard deviation of velocity per frame, as a fraction of box height.
    """

    position_noise: float = 1.0 / 20
    velocity_noise: float = 1.0 / 160

    def initiate(self, xyah: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Start tracks at measured boxes ``(N, 4)`` with zero velocity and wide uncertainty."""
        n = xyah.shape[0]
        mean = np.concatenate([xyah, np.zeros((n, _NDIM))], axis=1)
        p, v = self.position_noise, self.velocity_noise
        std = xyah[:, 3:4] * np.array([2 * p, 2 * p, 0, 2 * p, 10 * v, 10 * v, 0, 10 * v])
        std += np.array([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])
        covariance = np.zeros((n, 2 * _NDIM, 2 * _NDIM))
        covariance[:, _DIAGONAL, _DIAGONAL] = std**2
        return mean, covariance

    def predict(self, mean: FloatArray, covariance: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Advance every track one frame."""
        p, v = self.position_noise, self.velocity_noise
        std = mean[:, 3:4] * np.array([p, p, 0, p, v, v, 0, v]) + np.array([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])
        mean = mean @ _TRANSITION.T
        covariance = _TRANSITION @ covariance @ _TRANSITION.T
        covariance[:, _DIAGONAL, _DIAGONAL] += std**2
        return mean, covariance

    def update(
        self, mean: FloatArray, covariance: FloatArray, xyah: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Correct tracks ``(N, ...)`` with their measured boxes ``(N, 4)``."""
        p = self.position_noise
        noise = mean[:, 3:4] * np.array([p, p, 0, p]) + np.array([0, 0, 1e-1, 0])
        innovation_cov = covariance[:, :_NDIM, :_NDIM].copy()
        innovation_cov[:, _DIAGONAL[:_NDIM], _DIAGONAL[:_NDIM]] += noise**2
        cross = covariance[:, :, :_NDIM]  # P H^T
        # K = P H^T S^-1, solved rather than inverted: S is symmetric, so K^T = S^-1 (P H^T)^T.
        gain = np.linalg.solve(innovation_cov, cross.transpose(0, 2, 1)).transpose(0, 2, 1)
        innovation = xyah - mean[:, :_NDIM]
        mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        covariance = covariance - gain @ innovation_cov @ gain.transpose(0, 2, 1)
        return mean, covariance
