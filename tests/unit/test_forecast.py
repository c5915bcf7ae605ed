from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cvops.errors import InvalidInputError
from cvops.tracking.forecast import (
    ConstantPositionForecaster,
    ConstantVelocityForecaster,
    DampedAccelerationForecaster,
    Forecaster,
    RidgeForecaster,
)
from cvops.tracking.forecast_eval import (
    evaluate_forecaster,
    forecast_errors,
    forecast_samples,
    read_track_segments,
    track_segments,
)

START = (320.0, 240.0, 50.0, 120.0)  # cx, cy, w, h in pixels


def trajectory(
    frames: int,
    velocity: tuple[float, float, float, float] = (0, 0, 0, 0),
    acceleration: tuple[float, float, float, float] = (0, 0, 0, 0),
) -> np.ndarray:
    """Boxes (frames, 4) cx, cy, w, h: START moved at a constant velocity and acceleration per frame."""
    t = np.arange(frames, dtype=np.float64)[:, None]
    boxes = np.array(START) + np.array(velocity) * t + 0.5 * np.array(acceleration) * t**2
    return boxes.astype(np.float32)


def synthetic_tracks(seed: int, count: int = 60, frames: int = 40, noise_px: float = 0.5) -> list[np.ndarray]:
    """Random walkers: constant velocity plus a little acceleration and pixel noise."""
    rng = np.random.default_rng(seed)
    tracks = []
    for _ in range(count):
        velocity = (*rng.uniform(-5, 5, 2), *rng.uniform(-0.2, 0.2, 2))
        acceleration = (*rng.uniform(-0.05, 0.05, 2), 0.0, 0.0)
        track = trajectory(frames, velocity, acceleration)  # type: ignore[arg-type]
        tracks.append(track + rng.normal(0, noise_px, track.shape).astype(np.float32))
    return tracks


@pytest.fixture(scope="module")
def forecasters() -> dict[str, Forecaster]:
    return {
        "position": ConstantPositionForecaster(),
        "velocity": ConstantVelocityForecaster(),
        "damped": DampedAccelerationForecaster(),
        "acceleration": DampedAccelerationForecaster(acceleration_damping=1.0),
        "ridge": RidgeForecaster.fit(synthetic_tracks(seed=0)),
    }


VELOCITY = (3.0, -2.0, 0.5, 1.0)
ACCELERATION = (0.2, -0.1, 0.0, 0.0)


STILL = (0.0, 0.0, 0.0, 0.0)
MOVE_5 = 0.01 * 5 * float(np.hypot(3, 2))  # 1% of the distance travelled in 5 frames
MOVE_10 = 0.01 * 10 * float(np.hypot(3, 2))


@pytest.mark.parametrize(
    ("name", "frames", "velocity", "acceleration", "horizon", "max_error_px"),
    [
        # Standing still: every forecaster's weights sum to one, so the box stays exactly.
        *[
            pytest.param(name, frames, STILL, STILL, horizon, 1e-3, id=f"static-{name}-T{frames}-h{horizon}")
            for name in ("position", "velocity", "damped", "acceleration", "ridge")
            for frames, horizon in ((1, 1), (7, 5), (30, 10))
        ],
        # Constant velocity: the last box is off by exactly horizon * speed (None: checked so) ...
        pytest.param("position", 30, VELOCITY, STILL, 5, None, id="velocity-position-h5"),
        # ... the filters by the bias left from their zero-velocity start: <1% of the move,
        # <4% for the undamped acceleration model, whose extra state settles more slowly.
        pytest.param("velocity", 30, VELOCITY, STILL, 5, MOVE_5, id="velocity-velocity-h5"),
        pytest.param("velocity", 30, VELOCITY, STILL, 10, MOVE_10, id="velocity-velocity-h10"),
        pytest.param("damped", 30, VELOCITY, STILL, 10, MOVE_10, id="velocity-damped-h10"),
        pytest.param("acceleration", 30, VELOCITY, STILL, 10, 4 * MOVE_10, id="velocity-acceleration-h10"),
        pytest.param("ridge", 30, VELOCITY, STILL, 5, 2 * MOVE_5, id="velocity-ridge-h5"),
        # Constant acceleration: the undamped acceleration model extrapolates the parabola.
        pytest.param("acceleration", 30, (1, 0, 0, 0), ACCELERATION, 5, 0.1, id="parabola-acceleration-h5"),
        pytest.param(
            "acceleration", 30, (1, 0, 0, 0), ACCELERATION, 10, 0.25, id="parabola-acceleration-h10"
        ),
    ],
)
def test_forecast_on_exact_trajectories(
    forecasters: dict[str, Forecaster],
    name: str,
    frames: int,
    velocity: tuple[float, float, float, float],
    acceleration: tuple[float, float, float, float],
    horizon: int,
    max_error_px: float | None,
) -> None:
    boxes = trajectory(frames + horizon, velocity, acceleration)
    predicted = forecasters[name].forecast(boxes[:frames], horizon)
    assert predicted.shape == (4,)
    assert predicted.dtype == np.float32
    error_px = float(np.hypot(*(predicted[:2] - boxes[-1, :2])))
    if max_error_px is None:  # constant position: the whole distance travelled
        assert error_px == pytest.approx(horizon * np.hypot(*velocity[:2]), rel=1e-5)
        np.testing.assert_allclose(predicted, boxes[frames - 1], atol=1e-4)
    else:
        assert error_px <= max_error_px


def test_damped_acceleration_sits_between_velocity_and_acceleration_on_a_parabola(
    forecasters: dict[str, Forecaster],
) -> None:
    boxes = trajectory(40, (1, 0, 0, 0), ACCELERATION)
    errors = {
        name: float(np.hypot(*(forecasters[name].forecast(boxes[:30], 10)[:2] - boxes[-1, :2])))
        for name in ("position", "velocity", "damped", "acceleration")
    }
    assert errors["acceleration"] < errors["damped"] < errors["velocity"] < errors["position"]


@pytest.mark.parametrize("name", ["velocity", "damped", "ridge"])
def test_filters_beat_the_last_box_on_noisy_constant_velocity(
    forecasters: dict[str, Forecaster], name: str
) -> None:
    rng = np.random.default_rng(1)
    errors: dict[str, list[float]] = {name: [], "position": []}
    for _ in range(100):
        truth = trajectory(35, VELOCITY)
        noisy = truth + rng.normal(0, 2.0, truth.shape).astype(np.float32)
        for key in errors:
            predicted = forecasters[key].forecast(noisy[:30], 5)
            errors[key].append(float(np.hypot(*(predicted[:2] - truth[-1, :2]))))
    # Measured: mean error 2.7-2.9 px (velocity, damped) against 18 px for the last box.
    assert np.mean(errors[name]) < 0.25 * np.mean(errors["position"])
    assert np.mean(errors[name]) < 4.0


def reference_kalman_forecast(
    history: np.ndarray, horizon: int, position_noise: float = 1 / 20, velocity_noise: float = 1 / 160
) -> np.ndarray:
    """A textbook 8-state constant-velocity Kalman filter (cx, cy, w, h and velocities), ByteTrack noise."""
    transition = np.eye(8)
    transition[:4, 4:] = np.eye(4)
    observe = np.eye(4, 8)
    mean = np.concatenate([history[0], np.zeros(4)]).astype(np.float64)
    h = mean[3]
    covariance = np.diag(np.r_[np.full(4, 2 * position_noise * h), np.full(4, 10 * velocity_noise * h)] ** 2)
    for box in history[1:].astype(np.float64):
        h = mean[3]  # ByteTrack reads the noise scale from the current estimate every step
        process = np.diag(np.r_[np.full(4, position_noise * h), np.full(4, velocity_noise * h)] ** 2)
        mean = transition @ mean
        covariance = transition @ covariance @ transition.T + process
        innovation_cov = observe @ covariance @ observe.T + np.eye(4) * (position_noise * mean[3]) ** 2
        gain = covariance @ observe.T @ np.linalg.inv(innovation_cov)
        mean = mean + gain @ (box - observe @ mean)
        covariance = (np.eye(8) - gain @ observe) @ covariance
    return (np.linalg.matrix_power(transition, horizon) @ mean)[:4]


@pytest.mark.parametrize(
    ("height_growth", "tolerance_px"),
    [(0.0, 1e-3), (0.3, 0.15)],
    ids=["constant-height", "height-grows-by-30-percent"],
)
def test_constant_velocity_matches_a_textbook_kalman_filter(
    height_growth: float, tolerance_px: float
) -> None:
    rng = np.random.default_rng(2)
    boxes = trajectory(30, (3, -2, 0, height_growth * 120 / 30)) + rng.normal(0, 1.5, (30, 4)).astype(
        np.float32
    )
    boxes[:, 3] = np.abs(boxes[:, 3]) if height_growth else 120.0
    forecaster = ConstantVelocityForecaster()
    for horizon in (1, 5, 10):
        expected = reference_kalman_forecast(boxes, horizon)
        np.testing.assert_allclose(forecaster.forecast(boxes, horizon), expected, atol=tolerance_px)


@pytest.mark.parametrize("name", ["position", "velocity", "damped", "ridge"])
def test_batch_matches_one_by_one_with_ragged_histories(
    forecasters: dict[str, Forecaster], name: str
) -> None:
    rng = np.random.default_rng(3)
    tracks = synthetic_tracks(seed=4, count=12, frames=40)
    lengths = rng.integers(1, 41, size=len(tracks))
    padded = np.full((len(tracks), 40, 4), np.nan, np.float32)  # padding may hold anything
    for i, (track, length) in enumerate(zip(tracks, lengths, strict=True)):
        padded[i, 40 - length :] = track[:length]
    forecaster = forecasters[name]
    batch = forecaster.forecast_batch(padded, 5, lengths)
    single = np.stack([forecaster.forecast(t[:n], 5) for t, n in zip(tracks, lengths, strict=True)])
    assert batch.shape == (12, 4)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch, single, rtol=1e-6, atol=1e-3)
    full = np.stack([t[:40] for t in tracks])
    np.testing.assert_allclose(
        forecaster.forecast_batch(full, 3), np.stack([forecaster.forecast(t, 3) for t in full]), atol=1e-3
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: f.forecast(np.zeros((0, 4), np.float32), 1), "T>=1"),
        (lambda f: f.forecast(np.zeros((3, 2), np.float32), 1), "shape"),
        (lambda f: f.forecast([[0, 0, 1, 1]], 1), "numpy array"),
        (lambda f: f.forecast(np.array([[0, 0, 1, np.nan]], np.float32), 1), "NaN"),
        (lambda f: f.forecast(np.array([[0, 0, 1, np.inf]], np.float32), 1), "NaN or inf"),
        (lambda f: f.forecast(np.ones((3, 4), np.float32), 0), "horizon"),
        (lambda f: f.forecast(np.ones((3, 4), np.float32), -2), "horizon"),
        (lambda f: f.forecast(np.ones((3, 4), np.float32), 1.5), "horizon"),
        (lambda f: f.forecast(np.ones((3, 4), np.float32), True), "horizon"),
        (lambda f: f.forecast_batch(np.ones((2, 3, 4), np.float32), 1, np.array([1, 4])), "lengths"),
        (lambda f: f.forecast_batch(np.ones((2, 3, 4), np.float32), 1, np.array([0, 1])), "lengths"),
        (lambda f: f.forecast_batch(np.ones((2, 3, 4), np.float32), 1, np.array([1.0, 2.0])), "lengths"),
        (lambda f: f.forecast_batch(np.ones((3, 4), np.float32), 1), "shape"),
        (lambda f: f.forecast_batch(np.full((1, 3, 4), np.nan, np.float32), 1), "NaN"),
    ],
    ids=[
        "empty",
        "wrong-columns",
        "list",
        "nan",
        "inf",
        "horizon-0",
        "horizon-negative",
        "horizon-float",
        "horizon-bool",
        "length-too-long",
        "length-0",
        "lengths-float",
        "batch-2d",
        "batch-nan-in-history",
    ],
)
@pytest.mark.parametrize("name", ["position", "velocity", "damped", "ridge"])
def test_invalid_inputs_raise(
    forecasters: dict[str, Forecaster], name: str, call: Callable[[Forecaster], object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call(forecasters[name])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ConstantVelocityForecaster(window=0), "window"),
        (lambda: ConstantVelocityForecaster(velocity_noise=0.0), "velocity_noise"),
        (lambda: DampedAccelerationForecaster(acceleration_damping=1.5), "acceleration_damping"),
        (lambda: DampedAccelerationForecaster(acceleration_noise=-1.0), "acceleration_noise"),
        (lambda: RidgeForecaster.fit([trajectory(5)], regularization=0.0), "regularization"),
        (lambda: RidgeForecaster.fit([np.zeros((5, 4), np.float32)]), "heights > 0"),
        (lambda: RidgeForecaster(2, (((1.0,),),), (((1.0,),),)), "2 horizons"),
    ],
    ids=[
        "window-0",
        "noise-0",
        "damping-above-1",
        "noise-negative",
        "ridge-alpha-0",
        "zero-height",
        "ragged",
    ],
)
def test_invalid_settings_raise(build: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build()


def test_ridge_refuses_horizons_beyond_its_fit() -> None:
    model = RidgeForecaster.fit(synthetic_tracks(seed=5, count=5), max_horizon=3, max_displacements=4)
    assert model.forecast(trajectory(10, VELOCITY), 3).shape == (4,)
    with pytest.raises(InvalidInputError, match="fit up to 3"):
        model.forecast(trajectory(10, VELOCITY), 4)


def test_ridge_without_data_falls_back_to_the_kalman_prior() -> None:
    model = RidgeForecaster.fit([trajectory(3, VELOCITY)], max_horizon=5, max_displacements=6)
    assert model.samples == (1, 0, 0, 0, 0)
    history = trajectory(7, VELOCITY)
    np.testing.assert_allclose(
        model.forecast(history, 5), ConstantVelocityForecaster(window=7).forecast(history, 5), atol=1e-3
    )


def test_ridge_save_load_round_trip(tmp_path: Path) -> None:
    model = RidgeForecaster.fit(synthetic_tracks(seed=6, count=20), max_horizon=6, max_displacements=5)
    path = tmp_path / "ridge.json"
    model.save(path)
    loaded = RidgeForecaster.load(path)
    assert loaded == model
    assert loaded.max_displacements == 5
    histories = np.stack(synthetic_tracks(seed=7, count=8, frames=12))
    for horizon in (1, 6):
        np.testing.assert_array_equal(
            loaded.forecast_batch(histories, horizon), model.forecast_batch(histories, horizon)
        )


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such"), ("{}", "not a ridge forecaster"), ('{"format": "other"}', "not a ridge forecaster")],
    ids=["missing", "empty-object", "other-format"],
)
def test_ridge_load_rejects_bad_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "ridge.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidInputError, match=message):
        RidgeForecaster.load(path)


def test_weights_sum_to_one_and_stop_at_the_window() -> None:
    forecaster = ConstantVelocityForecaster(window=8)
    for length in (1, 2, 8, 20):
        weights = forecaster.weights(length, 5)
        assert weights.shape == (min(length, 8), 4)
        np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-9)


# ---- evaluation -------------------------------------------------------------------------------


def test_track_segments_split_at_missing_frames_and_convert_to_centers() -> None:
    frames = np.array([3, 1, 2, 5, 6, 1], np.int64)
    ids = np.array([7, 7, 7, 7, 7, 9], np.int64)
    xywh = np.array([[0, 0, 10, 20]] * 6, np.float32) + np.arange(6, dtype=np.float32)[:, None]
    segments = track_segments(frames, ids, xywh)
    assert [(s.track_id, s.first_frame, len(s.boxes_cxcywh)) for s in segments] == [
        (7, 1, 3),
        (7, 5, 2),
        (9, 1, 1),
    ]
    np.testing.assert_allclose(segments[0].boxes_cxcywh[0], [1 + 5.5, 1 + 10.5, 11, 21])  # frame 1 is row 1
    with pytest.raises(InvalidInputError, match="duplicates"):
        track_segments(np.array([1, 1]), np.array([2, 2]), np.zeros((2, 4), np.float32))


def test_forecast_samples_need_history_and_a_full_future() -> None:
    segments = track_segments(np.arange(1, 11), np.ones(10, np.int64), np.zeros((10, 4), np.float32))
    samples = forecast_samples(segments, horizon=3, min_history=2, max_history=4)
    # last history frame index 1..6 of 0..9 -> 6 samples; lengths capped at 4
    assert len(samples) == 6
    assert samples.lengths.tolist() == [2, 3, 4, 4, 4, 4]
    assert samples.histories_cxcywh.shape == (6, 4, 4)
    assert samples.futures_cxcywh.shape == (6, 3, 4)
    assert len(forecast_samples(segments, horizon=9, min_history=2)) == 0
    with pytest.raises(InvalidInputError, match="horizon"):
        forecast_samples(segments, horizon=0)
    with pytest.raises(InvalidInputError, match="min_history"):
        forecast_samples(segments, horizon=1, min_history=5, max_history=4)


def test_errors_of_the_last_box_on_a_straight_walk_are_exact() -> None:
    speed, height, horizon = 2.0, 100.0, 4
    xywh = np.array([[speed * i, 0.0, 40.0, height] for i in range(12)], np.float32)
    segments = track_segments(np.arange(12), np.zeros(12, np.int64), xywh)
    errors = evaluate_forecaster(ConstantPositionForecaster(), segments, horizon, min_history=1)
    assert errors.samples == 12 - horizon
    assert errors.ade_px == pytest.approx(speed * (horizon + 1) / 2)
    assert errors.fde_px == pytest.approx(speed * horizon)
    assert errors.ade_norm == pytest.approx(speed * (horizon + 1) / 2 / height)
    assert errors.fde_norm == pytest.approx(speed * horizon / height)
    perfect = evaluate_forecaster(ConstantVelocityForecaster(), segments, horizon, min_history=1)
    assert perfect.fde_px is not None
    assert perfect.fde_px < errors.fde_px


def test_errors_without_samples_are_none() -> None:
    segments = track_segments(np.arange(3), np.zeros(3, np.int64), np.ones((3, 4), np.float32))
    errors = forecast_errors(ConstantPositionForecaster(), forecast_samples(segments, horizon=5))
    assert (errors.samples, errors.ade_px, errors.fde_norm) == (0, None, None)


def test_read_track_segments_handles_mot15_crlf_and_mot17_filters(tmp_path: Path) -> None:
    mot15 = tmp_path / "mot15.txt"
    mot15.write_bytes(
        b"1,1,10,20,30,60,1,-1,-1,-1\r\n2,1,12,20,30,60,1,-1,-1,-1\r\n1,2,0,0,5,5,0,-1,-1,-1\r\n"
    )
    segments = read_track_segments(mot15)
    assert [(s.track_id, len(s.boxes_cxcywh)) for s in segments] == [(1, 2)]  # conf 0 row dropped
    np.testing.assert_allclose(segments[0].boxes_cxcywh[1], [27, 50, 30, 60])
    mot17 = tmp_path / "mot17.txt"
    rows = ["1,1,0,0,10,20,1,1,0.9", "2,1,1,0,10,20,1,1,0.8", "1,2,0,0,10,20,0,1,1", "1,3,0,0,10,20,1,7,1"]
    mot17.write_text("\n".join(rows) + "\n")
    assert [(s.track_id, len(s.boxes_cxcywh)) for s in read_track_segments(mot17)] == [(1, 2)]
    bad = tmp_path / "bad.txt"
    bad.write_text("1,2,3\n")
    with pytest.raises(InvalidInputError, match="columns"):
        read_track_segments(bad)
    with pytest.raises(InvalidInputError, match="no such"):
        read_track_segments(tmp_path / "missing.txt")
