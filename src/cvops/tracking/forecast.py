"""Trajectory forecasting: where a track's box will be ``horizon`` frames after its last one.

Every forecaster here predicts a fixed weighted sum of the history rows: a Kalman filter whose
noise is proportional to the box height has gains that do not depend on the data (scale the
height and every covariance scales by the same factor), so filtering the history and
extrapolating is a linear map from the history to the forecast, fixed for a given history length
and horizon. Each forecaster computes those weights once per (length, horizon), keeps them, and
a forecast is then one small dot product: microseconds per track, and a whole frame's tracks in
one numpy call with :meth:`forecast_batch`.

Boxes are ``cx, cy, w, h`` (center and size in pixels), one row per consecutive frame, oldest
first. Weights sum to one, so a static box is forecast exactly and a shifted history gives a
shifted forecast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cvops.errors import InvalidInputError

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
WeightArray = npt.NDArray[np.float64]

_POSITION, _SIZE = (0, 1), (2, 3)  # columns of cx, cy and of w, h


class Forecaster(Protocol):
    """Predicts a box ``horizon`` frames after the last box of a history."""

    def forecast(self, history_cxcywh: FloatArray, horizon: int) -> FloatArray:
        """Return the box at ``t + horizon``, shape (4,), float32, ``cx, cy, w, h`` in pixels.

        Args:
            history_cxcywh: Shape (T, 4), T >= 1, one box per consecutive frame, oldest first;
                the last row is frame ``t``.
            horizon: Frames ahead of ``t``, >= 1.
        """
        ...

    def forecast_batch(
        self, histories_cxcywh: FloatArray, horizon: int, lengths: IntArray | None = None
    ) -> FloatArray:
        """Return the boxes at ``t + horizon`` of many tracks, shape (N, 4), float32.

        Args:
            histories_cxcywh: Shape (N, T, 4); track ``i`` fills the last ``lengths[i]`` rows
                (newest last), the rows before are ignored.
            horizon: Frames ahead of each track's last row, >= 1.
            lengths: Rows of history per track, shape (N,), in [1, T]; None means all T rows.
        """
        ...


class _LinearForecaster:
    """Shared machinery of forecasters that predict a fixed weighted sum of the history rows.

    Subclasses are dataclasses with a ``window`` (most recent rows used) and a ``_cache`` dict,
    and implement ``_weights_by_length(horizon)``: for each length 1..window, the (length, 4)
    float64 weights of the rows, each column summing to 1.
    """

    __slots__ = ()
    window: int
    _cache: dict[tuple[int, int], WeightArray]

    def _weights_by_length(self, horizon: int) -> list[WeightArray]:
        raise NotImplementedError

    def weights(self, length: int, horizon: int) -> WeightArray:
        """Return the weight of each history row, shape (min(length, window), 4), per column."""
        length = min(length, self.window)
        cached = self._cache.get((length, horizon))
        if cached is None:  # one pass gives every length: a filter of length L is a prefix of L + 1
            for count, weights in enumerate(self._weights_by_length(horizon), start=1):
                self._cache[count, horizon] = weights
            cached = self._cache[length, horizon]
        return cached

    def forecast(self, history_cxcywh: FloatArray, horizon: int) -> FloatArray:
        """Return the box at ``t + horizon``, shape (4,), float32 (see :class:`Forecaster`)."""
        history = _check_history(history_cxcywh)
        _check_horizon(horizon)
        weights = self.weights(history.shape[0], horizon)
        recent = history[history.shape[0] - weights.shape[0] :]
        box: FloatArray = np.einsum("tc,tc->c", weights, recent).astype(np.float32)
        return box

    def forecast_batch(
        self, histories_cxcywh: FloatArray, horizon: int, lengths: IntArray | None = None
    ) -> FloatArray:
        """Return the boxes at ``t + horizon`` of many tracks, shape (N, 4) (see :class:`Forecaster`)."""
        _check_horizon(horizon)
        histories, counts = _check_batch(histories_cxcywh, lengths)
        rows = min(histories.shape[1], self.window)
        recent = histories[:, histories.shape[1] - rows :]
        counts = np.minimum(counts, rows)
        table = self._cache_table(rows, horizon)  # (rows + 1, rows, 4): weights by length, left-padded
        is_valid = np.arange(rows)[None, :] >= (rows - counts)[:, None]
        recent = np.where(is_valid[:, :, None], recent, 0.0)  # padding may hold anything, even NaN
        boxes: FloatArray = np.einsum("ntc,ntc->nc", table[counts], recent).astype(np.float32)
        return boxes

    def _cache_table(self, rows: int, horizon: int) -> WeightArray:
        key = (-rows, horizon)  # negative lengths never collide with the per-length weights
        table = self._cache.get(key)
        if table is None:
            table = np.zeros((rows + 1, rows, 4))
            for length in range(1, rows + 1):
                table[length, rows - length :] = self.weights(length, horizon)
            self._cache[key] = table
        return table


@dataclass(frozen=True, slots=True)
class ConstantPositionForecaster(_LinearForecaster):
    """The baseline: the box stays where it was last seen."""

    window: int = field(default=1, init=False)
    _cache: dict[tuple[int, int], WeightArray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _weights_by_length(self, horizon: int) -> list[WeightArray]:
        return [_last_row_weights(1)]


@dataclass(frozen=True, slots=True)
class ConstantVelocityForecaster(_LinearForecaster):
    """The constant-velocity Kalman baseline, as in SORT/ByteTrack.

    Each of ``cx, cy, w, h`` has a position and a velocity; the filter starts at the first box
    with zero velocity (uncertainty ``2 * position_noise`` and ``10 * velocity_noise`` box
    heights), predicts and updates once per later box, then extrapolates ``horizon`` frames at
    the filtered velocity. Noise standard deviations are fractions of the box height (ByteTrack's
    defaults); the height is taken as constant over the window (ByteTrack re-reads it every frame,
    which moves the gains by the few percent the height changes within a window).

    Attributes:
        window: Most recent boxes filtered (older ones are dropped), >= 1.
        position_noise: Process and measurement noise of position per frame, in box heights.
        velocity_noise: Process noise of velocity per frame, in box heights.
    """

    window: int = 30
    position_noise: float = 1.0 / 20
    velocity_noise: float = 1.0 / 160
    _cache: dict[tuple[int, int], WeightArray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        """Reject out-of-range settings."""
        _check_positive("window", self.window)
        _check_positive("position_noise", self.position_noise)
        _check_positive("velocity_noise", self.velocity_noise)

    def _weights_by_length(self, horizon: int) -> list[WeightArray]:
        by_length = _constant_velocity_weights(self.window, horizon, self.position_noise, self.velocity_noise)
        return [np.repeat(weights[:, None], 4, axis=1) for weights in by_length]


@dataclass(frozen=True, slots=True)
class DampedAccelerationForecaster(_LinearForecaster):
    """A Kalman filter on position, velocity and an acceleration that decays each frame.

    Pedestrians speed up, slow down and turn for a few frames at a time, then keep their pace:
    the acceleration is a first-order Markov process (Singer model) that keeps
    ``acceleration_damping`` of itself per frame, so a forecast follows a recent change of speed
    without extrapolating it quadratically far ahead (damping 1 is the constant-acceleration
    model, which overshoots at 10 frames). Noise is in box heights, like
    :class:`ConstantVelocityForecaster`. The acceleration defaults were picked on the TUD-Campus
    and TUD-Stadtmitte ground truth (benchmarks/forecast_eval.py), out of 16 noise x damping pairs.

    Attributes:
        window: Most recent boxes filtered (older ones are dropped), >= 1.
        position_noise: Process and measurement noise of position per frame, in box heights.
        velocity_noise: Process noise of velocity per frame, in box heights.
        acceleration_noise: Process noise of acceleration per frame, in box heights.
        acceleration_damping: Fraction of the acceleration kept from one frame to the next, in [0, 1].
    """

    window: int = 30
    position_noise: float = 1.0 / 20
    velocity_noise: float = 1.0 / 160
    acceleration_noise: float = 1.0 / 1000
    acceleration_damping: float = 0.8
    _cache: dict[tuple[int, int], WeightArray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        """Reject out-of-range settings."""
        _check_positive("window", self.window)
        _check_positive("position_noise", self.position_noise)
        _check_positive("velocity_noise", self.velocity_noise)
        _check_positive("acceleration_noise", self.acceleration_noise)
        if not 0.0 <= self.acceleration_damping <= 1.0:
            raise InvalidInputError(
                f"acceleration_damping: expected a value in [0, 1], got {self.acceleration_damping}"
            )

    def _weights_by_length(self, horizon: int) -> list[WeightArray]:
        d = self.acceleration_damping
        transition = np.array([[1.0, 1.0, 0.5], [0.0, 1.0, 1.0], [0.0, 0.0, d]])
        stds = np.array([self.position_noise, self.velocity_noise, self.acceleration_noise])
        initial = np.diag((np.array([2.0, 10.0, 10.0]) * stds) ** 2)
        by_length = _kalman_weights(
            transition, np.diag(stds**2), self.position_noise**2, initial, self.window, horizon
        )
        return [np.repeat(weights[:, None], 4, axis=1) for weights in by_length]


@dataclass(frozen=True, slots=True)
class RidgeForecaster(_LinearForecaster):
    """A learned linear forecaster: future displacement from the last few displacements.

    For each horizon ``h`` and each number ``m`` of past displacements available (1 ..
    ``max_displacements``), ridge regression fits ``(x[t+h] - x[t]) / height[t]`` on
    ``(x[t-j] - x[t-j-1]) / height[t]``, ``j < m``, pooling ``cx`` with ``cy`` (one coefficient
    set for positions) and ``w`` with ``h`` (one for sizes). Dividing by the height makes every
    sample count in box heights, whatever its distance to the camera; the fitted map is still
    linear in pixels. The penalty pulls the coefficients towards those of
    :class:`ConstantVelocityForecaster` (ByteTrack noise) rather than towards zero, so with little
    data the model falls back to the Kalman baseline.

    Build with :meth:`fit` or :meth:`load`.

    Attributes:
        max_horizon: Longest horizon fitted; longer ones are refused.
        position_coefficients: ``[h - 1][m - 1]`` -> m coefficients, oldest displacement first.
        size_coefficients: The same for ``w`` and ``h``.
        regularization: Penalty in units of the mean eigenvalue of the features' Gram matrix.
        samples: Training boxes per horizon (each gives a cx, a cy, a w and an h sample).
    """

    max_horizon: int
    position_coefficients: tuple[tuple[tuple[float, ...], ...], ...]
    size_coefficients: tuple[tuple[tuple[float, ...], ...], ...]
    regularization: float = 1.0
    samples: tuple[int, ...] = ()
    window: int = field(init=False)
    _cache: dict[tuple[int, int], WeightArray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        """Check that the coefficient tables have one entry per horizon and displacement count."""
        for name, table in (("position", self.position_coefficients), ("size", self.size_coefficients)):
            if len(table) != self.max_horizon or self.max_horizon < 1:
                raise InvalidInputError(
                    f"{name}_coefficients: expected {self.max_horizon} horizons, got {len(table)}"
                )
            counts = {len(per_horizon) for per_horizon in table}
            if len(counts) != 1 or 0 in counts:
                raise InvalidInputError(f"{name}_coefficients: expected the same m >= 1 for every horizon")
            for per_horizon in table:
                if [len(c) for c in per_horizon] != list(range(1, len(per_horizon) + 1)):
                    raise InvalidInputError(
                        f"{name}_coefficients: expected 1, 2, ... coefficients per entry, "
                        f"got {[len(c) for c in per_horizon]}"
                    )
        if len(self.position_coefficients[0]) != len(self.size_coefficients[0]):
            raise InvalidInputError("position and size coefficients: expected the same max_displacements")
        object.__setattr__(self, "window", len(self.position_coefficients[0]) + 1)

    @property
    def max_displacements(self) -> int:
        """Return the most past displacements the model uses (its window minus one)."""
        return self.window - 1

    @classmethod
    def fit(
        cls,
        tracks_cxcywh: Sequence[FloatArray],
        max_horizon: int = 10,
        max_displacements: int = 10,
        regularization: float = 1.0,
    ) -> RidgeForecaster:
        """Fit the coefficients on ground-truth tracks.

        Args:
            tracks_cxcywh: Tracks, each shape (T, 4), one box per consecutive frame (cut tracks
                at missing frames before), ``cx, cy, w, h`` in pixels with ``h > 0``.
            max_horizon: Longest horizon to fit, >= 1.
            max_displacements: Most past displacements per forecast, >= 1.
            regularization: Penalty towards the Kalman coefficients, > 0, in units of the mean
                eigenvalue of the features' Gram matrix (so it does not depend on the data's size).

        Raises:
            InvalidInputError: When a setting is out of range or a track is malformed.
        """
        _check_positive("max_horizon", max_horizon)
        _check_positive("max_displacements", max_displacements)
        _check_positive("regularization", regularization)
        tracks = [_check_history(track).astype(np.float64) for track in tracks_cxcywh]
        if any((track[:, 3] <= 0).any() for track in tracks):
            raise InvalidInputError("tracks_cxcywh: expected heights > 0")
        prior = ConstantVelocityForecaster(window=max_displacements + 1)
        position: list[tuple[tuple[float, ...], ...]] = []
        size: list[tuple[tuple[float, ...], ...]] = []
        samples: list[int] = []
        for horizon in range(1, max_horizon + 1):
            fitted: dict[tuple[int, int], list[tuple[float, ...]]] = {_POSITION: [], _SIZE: []}
            for count in range(1, max_displacements + 1):
                features, targets = _displacement_samples(tracks, count, horizon)
                if count == 1:
                    samples.append(sum(len(t) for t in targets))
                c0 = _displacement_coefficients(prior.weights(count + 1, horizon)[:, 0])
                for columns, per_count in fitted.items():
                    x = np.concatenate([_pool(f, columns) for f in features] or [np.zeros((0, count))])
                    y = np.concatenate([t[:, columns].reshape(-1) for t in targets] or [np.zeros(0)])
                    per_count.append(tuple(_ridge(x, y, c0, regularization).tolist()))
            position.append(tuple(fitted[_POSITION]))
            size.append(tuple(fitted[_SIZE]))
        return cls(max_horizon, tuple(position), tuple(size), regularization, tuple(samples))

    def save(self, path: Path) -> None:
        """Write the coefficients to ``path`` as JSON (see :meth:`load`)."""
        spec = _RidgeForecasterFile(
            max_horizon=self.max_horizon,
            max_displacements=self.max_displacements,
            regularization=self.regularization,
            samples=self.samples,
            position_coefficients=self.position_coefficients,
            size_coefficients=self.size_coefficients,
        )
        path.write_text(spec.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> RidgeForecaster:
        """Read coefficients written by :meth:`save`.

        Raises:
            InvalidInputError: When the file is missing or does not match the format.
        """
        if not path.is_file():
            raise InvalidInputError(f"{path}: no such forecaster file")
        try:
            spec = _RidgeForecasterFile.model_validate_json(path.read_text())
        except ValidationError as error:
            raise InvalidInputError(f"{path}: not a ridge forecaster file: {error}") from error
        model = cls(
            spec.max_horizon,
            spec.position_coefficients,
            spec.size_coefficients,
            spec.regularization,
            spec.samples,
        )
        if model.max_displacements != spec.max_displacements:
            raise InvalidInputError(
                f"{path}: max_displacements {spec.max_displacements} does not match the coefficients"
            )
        return model

    def _weights_by_length(self, horizon: int) -> list[WeightArray]:
        if horizon > self.max_horizon:
            raise InvalidInputError(f"horizon: this model was fit up to {self.max_horizon}, got {horizon}")
        by_length = [_last_row_weights(1)]
        for count in range(1, self.window):
            weights = np.empty((count + 1, 4))
            for columns, table in ((_POSITION, self.position_coefficients), (_SIZE, self.size_coefficients)):
                weights[:, columns] = _row_weights(np.asarray(table[horizon - 1][count - 1]))[:, None]
            by_length.append(weights)
        return by_length


class _RidgeForecasterFile(BaseModel):
    """The JSON file of a :class:`RidgeForecaster`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["cvops.ridge_forecaster"] = "cvops.ridge_forecaster"
    schema_version: Literal[1] = 1
    max_horizon: int = Field(ge=1)
    max_displacements: int = Field(ge=1)
    regularization: float = Field(gt=0.0)
    samples: tuple[int, ...]
    position_coefficients: tuple[tuple[tuple[float, ...], ...], ...]
    size_coefficients: tuple[tuple[tuple[float, ...], ...], ...]


def _kalman_weights(
    transition: WeightArray,
    process_noise: WeightArray,
    measurement_noise: float,
    initial_covariance: WeightArray,
    max_length: int,
    horizon: int,
) -> list[WeightArray]:
    """Return, for each history length 1..max_length, the weight of each measurement in the forecast.

    The forecast is the filtered state extrapolated ``horizon`` steps, for one coordinate; the
    state's first component is the measured position. The covariances do not depend on the
    measurements, so the state is tracked as coefficients on the measurements (shape
    (n, max_length)) through the same predict/update steps a filter would take.
    """
    n = transition.shape[0]
    state: WeightArray = np.zeros((n, max_length))
    state[0, 0] = 1.0  # initiated at the first measurement, velocity and acceleration zero
    covariance: WeightArray = initial_covariance.copy()
    extrapolate: WeightArray = np.linalg.matrix_power(transition, horizon)[0]
    by_length = [extrapolate @ state[:, :1]]
    for t in range(1, max_length):
        state = transition @ state
        covariance = transition @ covariance @ transition.T + process_noise
        gain = covariance[:, 0] / (covariance[0, 0] + measurement_noise)
        innovation = -state[0]
        innovation[t] += 1.0
        state = state + np.outer(gain, innovation)
        covariance = covariance - np.outer(gain, covariance[0])
        by_length.append(extrapolate @ state[:, : t + 1])
    return by_length


def _constant_velocity_weights(
    max_length: int, horizon: int, position_noise: float, velocity_noise: float
) -> list[WeightArray]:
    transition = np.array([[1.0, 1.0], [0.0, 1.0]])
    initial = np.diag([(2 * position_noise) ** 2, (10 * velocity_noise) ** 2])
    process = np.diag([position_noise**2, velocity_noise**2])
    return _kalman_weights(transition, process, position_noise**2, initial, max_length, horizon)


def _last_row_weights(length: int) -> WeightArray:
    weights = np.zeros((length, 4))
    weights[-1] = 1.0
    return weights


def _displacement_coefficients(row_weights: WeightArray) -> WeightArray:
    """Rewrite sum_t w_t x_t (weights summing to 1) as x_last + sum_u c_u (x_u - x_{u-1})."""
    coefficients: WeightArray = -np.cumsum(row_weights)[:-1]
    return coefficients


def _row_weights(coefficients: WeightArray) -> WeightArray:
    """Invert :func:`_displacement_coefficients`: m coefficients -> m + 1 row weights."""
    padded = np.concatenate([[0.0], coefficients, [0.0]])
    weights: WeightArray = padded[:-1] - padded[1:]
    weights[-1] += 1.0
    return weights


def _displacement_samples(
    tracks: Sequence[WeightArray], count: int, horizon: int
) -> tuple[list[WeightArray], list[WeightArray]]:
    """Return per track: features (S, count, 4) and targets (S, 4), both in box heights."""
    features: list[WeightArray] = []
    targets: list[WeightArray] = []
    for track in tracks:
        last = np.arange(count, track.shape[0] - horizon)  # the newest box of each sample
        if not last.size:
            continue
        steps = np.diff(track, axis=0)  # steps[i] = track[i + 1] - track[i]
        scale = track[last, 3][:, None]
        index = last[:, None] - count + np.arange(count)[None, :]
        features.append(steps[index] / scale[:, :, None])
        targets.append((track[last + horizon] - track[last]) / scale)
    return features, targets


def _pool(features: WeightArray, columns: tuple[int, int]) -> WeightArray:
    """Stack the columns of features (S, count, 4) as separate samples: (S * len(columns), count)."""
    pooled: WeightArray = features[:, :, list(columns)].transpose(0, 2, 1).reshape(-1, features.shape[1])
    return pooled


def _ridge(x: WeightArray, y: WeightArray, prior: WeightArray, regularization: float) -> WeightArray:
    """Solve min |x c - y|^2 + lam |c - prior|^2 with lam relative to the Gram matrix's scale."""
    if not y.size:
        return prior
    gram: WeightArray = x.T @ x
    lam = regularization * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
    rhs: WeightArray = x.T @ y + lam * prior
    solution = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), rhs).astype(np.float64)
    return solution


def _check_history(history: object) -> WeightArray:
    if not isinstance(history, np.ndarray):
        raise InvalidInputError(f"history_cxcywh: expected a numpy array, got {type(history).__name__}")
    if history.ndim != 2 or history.shape[1] != 4 or history.shape[0] < 1:
        raise InvalidInputError(f"history_cxcywh: expected shape (T>=1, 4), got {history.shape}")
    values = history.astype(np.float64, copy=False)
    if not np.isfinite(values).all():
        raise InvalidInputError("history_cxcywh: expected finite values, got NaN or inf")
    return values


def _check_batch(histories: object, lengths: object) -> tuple[WeightArray, IntArray]:
    if not isinstance(histories, np.ndarray):
        raise InvalidInputError(f"histories_cxcywh: expected a numpy array, got {type(histories).__name__}")
    if histories.ndim != 3 or histories.shape[2] != 4 or histories.shape[1] < 1:
        raise InvalidInputError(f"histories_cxcywh: expected shape (N, T>=1, 4), got {histories.shape}")
    n, rows = histories.shape[:2]
    if lengths is None:
        counts = np.full(n, rows, np.int64)
    else:
        counts = np.asarray(lengths)
        if counts.shape != (n,) or not np.issubdtype(counts.dtype, np.integer):
            raise InvalidInputError(f"lengths: expected ({n},) integers, got {counts.shape} {counts.dtype}")
        if n and (counts.min() < 1 or counts.max() > rows):
            raise InvalidInputError(
                f"lengths: expected values in [1, {rows}], got [{counts.min()}, {counts.max()}]"
            )
        counts = counts.astype(np.int64, copy=False)
    values = histories.astype(np.float64, copy=False)
    is_valid = np.arange(rows)[None, :] >= (rows - counts)[:, None]
    if not np.isfinite(values[is_valid]).all():
        raise InvalidInputError("histories_cxcywh: expected finite values, got NaN or inf")
    return values, counts


def _check_horizon(horizon: object) -> None:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise InvalidInputError(f"horizon: expected an integer >= 1, got {horizon!r}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise InvalidInputError(f"{name}: expected > 0, got {value}")
