"""Camera-realistic augmentation of detection training images, built on albumentations.

:func:`build_augmentation` turns a frozen :class:`AugmentConfig` into an :class:`Augmenter` that
transforms one BGR image with its ``xyxy`` pixel boxes and their class ids. Families run in
roughly the order a camera would produce them: geometry (flip, affine), motion and focus blur,
lighting and color, sensor noise, then JPEG compression.

albumentations is imported only when an augmenter is built: it is a ``cvops[train]`` dependency,
and importing it also loads torch (its ``albumentations.pytorch`` module) where torch is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from cvops.errors import BackendUnavailableError, InvalidInputError

ImageArray = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# Gray borders where the affine transform leaves no pixels, as Ultralytics' letterbox pads.
_BORDER_FILL = 114


@dataclass(frozen=True, slots=True)
class AugmentConfig:
    """Which augmentation families run, how often (``*_p``, a probability per image) and how strongly.

    Every family has an ``is_*_enabled`` switch; :meth:`disabled` turns them all off (identity).

    Attributes:
        seed: Seed of the augmenter's random generator; None draws a fresh one (not reproducible).
        min_visibility: Drop a box when less than this fraction of its area is left in the image.
        min_box_side_px: Drop a box whose width or height ends below this many pixels.
        is_flip_enabled: Mirror left-right.
        flip_p: Probability of a mirror.
        is_affine_enabled: Scale, shift and rotate (one ``A.Affine``, same scale on both axes).
        affine_p: Probability of an affine transform.
        scale_range: Scale factor range, ``(low, high)``, > 0.
        translate_fraction: Shift of up to this fraction of the width/height each way, in [0, 0.5].
        rotate_deg: Rotation of up to this many degrees each way, in [0, 180].
        is_brightness_contrast_enabled: Vary exposure and contrast.
        brightness_contrast_p: Probability of a brightness/contrast change.
        brightness_limit: Brightness shift of up to this fraction of 255 each way, in [0, 1].
        contrast_limit: Contrast gain change of up to this fraction each way, in [0, 1].
        is_hue_saturation_enabled: Vary white balance and saturation.
        hue_saturation_p: Probability of a hue/saturation change.
        hue_shift_deg: Hue rotation of up to this many degrees each way, in [0, 180].
        saturation_shift: Saturation shift of up to this much (0..255 scale) each way.
        is_blur_enabled: Gaussian blur (focus, dirty lens).
        blur_p: Probability of a Gaussian blur.
        blur_max_kernel: Largest blur kernel side in pixels, odd, >= 3.
        is_motion_blur_enabled: Linear motion blur (moving objects or camera).
        motion_blur_p: Probability of a motion blur.
        motion_blur_max_kernel: Longest motion streak in pixels, odd, >= 3.
        is_noise_enabled: Gaussian sensor noise.
        noise_p: Probability of noise.
        noise_std_range: Noise standard deviation range as a fraction of 255, within [0, 1].
        is_jpeg_enabled: JPEG compression artifacts (camera and stream encoders).
        jpeg_p: Probability of a JPEG round trip.
        jpeg_quality_range: JPEG quality range, within [1, 100].
    """

    seed: int | None = None
    min_visibility: float = 0.3
    min_box_side_px: float = 2.0
    is_flip_enabled: bool = True
    flip_p: float = 0.5
    is_affine_enabled: bool = True
    affine_p: float = 0.5
    scale_range: tuple[float, float] = (0.75, 1.25)
    translate_fraction: float = 0.1
    rotate_deg: float = 5.0
    is_brightness_contrast_enabled: bool = True
    brightness_contrast_p: float = 0.5
    brightness_limit: float = 0.2
    contrast_limit: float = 0.2
    is_hue_saturation_enabled: bool = True
    hue_saturation_p: float = 0.3
    hue_shift_deg: float = 10.0
    saturation_shift: float = 30.0
    is_blur_enabled: bool = True
    blur_p: float = 0.1
    blur_max_kernel: int = 5
    is_motion_blur_enabled: bool = True
    motion_blur_p: float = 0.1
    motion_blur_max_kernel: int = 7
    is_noise_enabled: bool = True
    noise_p: float = 0.2
    noise_std_range: tuple[float, float] = (0.01, 0.04)
    is_jpeg_enabled: bool = True
    jpeg_p: float = 0.3
    jpeg_quality_range: tuple[int, int] = (40, 95)

    def __post_init__(self) -> None:
        """Reject out-of-range values with what was expected."""
        for field in fields(self):
            if field.name.endswith("_p"):
                _check_range(field.name, getattr(self, field.name), 0.0, 1.0)
        for name, low, high in (
            ("min_visibility", 0.0, 1.0),
            ("translate_fraction", 0.0, 0.5),
            ("rotate_deg", 0.0, 180.0),
            ("brightness_limit", 0.0, 1.0),
            ("contrast_limit", 0.0, 1.0),
            ("hue_shift_deg", 0.0, 180.0),
            ("saturation_shift", 0.0, 255.0),
        ):
            _check_range(name, getattr(self, name), low, high)
        if self.min_box_side_px < 0:
            raise InvalidInputError(f"min_box_side_px: expected >= 0, got {self.min_box_side_px}")
        _check_pair("scale_range", self.scale_range, 1e-3, 10.0)
        _check_pair("noise_std_range", self.noise_std_range, 0.0, 1.0)
        _check_pair("jpeg_quality_range", self.jpeg_quality_range, 1, 100)
        for name in ("blur_max_kernel", "motion_blur_max_kernel"):
            value = getattr(self, name)
            if value < 3 or value % 2 == 0:
                raise InvalidInputError(f"{name}: expected an odd kernel size >= 3, got {value}")

    @classmethod
    def disabled(cls, seed: int | None = None) -> AugmentConfig:
        """Return a config with every family switched off: the augmenter returns its input."""
        return cls(
            seed=seed,
            is_flip_enabled=False,
            is_affine_enabled=False,
            is_brightness_contrast_enabled=False,
            is_hue_saturation_enabled=False,
            is_blur_enabled=False,
            is_motion_blur_enabled=False,
            is_noise_enabled=False,
            is_jpeg_enabled=False,
        )

    @property
    def is_identity(self) -> bool:
        """True when no family is enabled."""
        return not (
            self.is_flip_enabled
            or self.is_affine_enabled
            or self.is_brightness_contrast_enabled
            or self.is_hue_saturation_enabled
            or self.is_blur_enabled
            or self.is_motion_blur_enabled
            or self.is_noise_enabled
            or self.is_jpeg_enabled
        )


class Augmenter:
    """Applies one albumentations pipeline to an image and its boxes; build with :func:`build_augmentation`.

    Not thread-safe (one random generator); give each data-loader worker its own copy and
    :meth:`reseed` it (e.g. with the base seed plus the worker id) so workers differ.
    """

    def __init__(self, config: AugmentConfig, compose: Any) -> None:
        """Wrap ``compose`` (an ``A.Compose`` with pascal_voc bbox params, or None for identity)."""
        self.config = config
        self._compose = compose

    def __call__(
        self, image_bgr: ImageArray, xyxy: npt.ArrayLike, class_ids: npt.ArrayLike
    ) -> tuple[ImageArray, FloatArray, IntArray]:
        """Augment one image with its boxes.

        Args:
            image_bgr: Image, shape (H, W, 3), uint8, BGR (the color families are symmetric, so
                BGR and RGB give the same distribution).
            xyxy: Boxes, shape (N, 4), ``x1, y1, x2, y2`` in pixels; parts outside the image are
                clipped first.
            class_ids: Class of each box, shape (N,), integers.

        Returns:
            The augmented image (same shape, a new array), the boxes that remain, shape (M, 4)
            float32 pixels inside the image, and their class ids, shape (M,) int64, aligned with
            the boxes.

        Raises:
            InvalidInputError: When the image is not (H, W, 3) uint8, the arrays do not match,
                or a box is not finite, has no area, or lies wholly outside the image.
        """
        boxes, ids = _checked_inputs(image_bgr, xyxy, class_ids)
        if self._compose is None:
            return image_bgr.copy(), boxes, ids
        out = self._compose(image=image_bgr, bboxes=boxes, class_ids=ids)
        image = np.ascontiguousarray(out["image"], np.uint8)
        if np.shares_memory(image, image_bgr):  # no transform fired: never hand back the caller's array
            image = image.copy()
        return (
            image,
            np.asarray(out["bboxes"], np.float32).reshape(-1, 4),
            np.asarray(out["class_ids"], np.int64).reshape(-1),
        )

    def reseed(self, seed: int) -> None:
        """Restart the random generator from ``seed`` (same seed, same sequence of outputs)."""
        if self._compose is not None:
            self._compose.set_random_seed(seed)


def build_augmentation(config: AugmentConfig) -> Augmenter:
    """Build the augmenter described by ``config``.

    Raises:
        BackendUnavailableError: When albumentations is not installed (``pip install cvops[train]``).
    """
    if config.is_identity:
        return Augmenter(config, None)
    try:
        import albumentations as A
    except ImportError as error:
        raise BackendUnavailableError(
            f"augmentation needs albumentations: pip install 'cvops[train]' ({error})"
        ) from error
    import cv2

    c = config
    transforms: list[Any] = []
    if c.is_flip_enabled:
        transforms.append(A.HorizontalFlip(p=c.flip_p))
    if c.is_affine_enabled:
        transforms.append(
            A.Affine(
                scale=c.scale_range,
                keep_ratio=True,
                translate_percent=(-c.translate_fraction, c.translate_fraction),
                rotate=(-c.rotate_deg, c.rotate_deg),
                border_mode=cv2.BORDER_CONSTANT,
                fill=_BORDER_FILL,
                p=c.affine_p,
            )
        )
    if c.is_motion_blur_enabled:
        transforms.append(A.MotionBlur(blur_limit=(3, c.motion_blur_max_kernel), p=c.motion_blur_p))
    if c.is_blur_enabled:
        transforms.append(A.GaussianBlur(blur_limit=(3, c.blur_max_kernel), p=c.blur_p))
    if c.is_brightness_contrast_enabled:
        transforms.append(
            A.RandomBrightnessContrast(
                brightness_limit=c.brightness_limit,
                contrast_limit=c.contrast_limit,
                p=c.brightness_contrast_p,
            )
        )
    if c.is_hue_saturation_enabled:
        transforms.append(
            A.HueSaturationValue(
                hue_shift_limit=c.hue_shift_deg / 2,  # uint8 images hold OpenCV hue: 2 degrees per unit
                sat_shift_limit=c.saturation_shift,
                val_shift_limit=0,  # brightness is the brightness/contrast family's
                p=c.hue_saturation_p,
            )
        )
    if c.is_noise_enabled:
        transforms.append(A.GaussNoise(std_range=c.noise_std_range, p=c.noise_p))
    if c.is_jpeg_enabled:
        transforms.append(
            A.ImageCompression(compression_type="jpeg", quality_range=c.jpeg_quality_range, p=c.jpeg_p)
        )
    compose = A.Compose(
        transforms,
        bbox_params=A.BboxParams(
            format="pascal_voc",
            label_fields=["class_ids"],
            min_visibility=c.min_visibility,
            min_width=c.min_box_side_px,
            min_height=c.min_box_side_px,
        ),
        seed=c.seed,
    )
    return Augmenter(config, compose)


def _checked_inputs(
    image: object, xyxy: npt.ArrayLike, class_ids: npt.ArrayLike
) -> tuple[FloatArray, IntArray]:
    """Return the boxes clipped to the image as float32 (N, 4) and the ids as int64 (N,)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InvalidInputError(f"image: expected a (H, W, 3) uint8 array, got {got}")
    boxes = np.asarray(xyxy, np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InvalidInputError(f"xyxy: expected shape (N, 4), got {boxes.shape}")
    ids = np.asarray(class_ids)
    if ids.shape != (boxes.shape[0],) or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise InvalidInputError(
            f"class_ids: expected {boxes.shape[0]} integers (one per box), got shape {ids.shape} {ids.dtype}"
        )
    if not np.isfinite(boxes).all():
        raise InvalidInputError("xyxy: expected finite values, got NaN or inf")
    if ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any():
        raise InvalidInputError("xyxy: expected x2 > x1 and y2 > y1 for every box")
    height, width = image.shape[:2]
    clipped = np.clip(boxes, 0.0, np.array([width, height, width, height], np.float32))
    outside = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise InvalidInputError(
            f"xyxy: expected boxes overlapping the {width}x{height} image, "
            f"got box {first} at {boxes[first].tolist()}"
        )
    return clipped, ids.astype(np.int64)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidInputError(f"{name}: expected a value in [{low}, {high}], got {value}")


def _check_pair(name: str, pair: tuple[float, float], low: float, high: float) -> None:
    if len(pair) != 2 or not low <= pair[0] <= pair[1] <= high:
        raise InvalidInputError(
            f"{name}: expected (low, high) with {low} <= low <= high <= {high}, got {pair}"
        )
