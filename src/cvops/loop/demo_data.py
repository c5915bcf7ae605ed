"""The data the demo loop starts from: a small labeled seed set, an unlabeled pool, a held-out set.

All three are synthetic scenes (:mod:`cvops.data.synthetic`) drawn with different seeds, so
no image is shared. The pool's labels exist only for the simulated annotator, standing in for
the people who would label the selected frames in Label Studio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cvops.data.synthetic import generate_scenes
from cvops.errors import InvalidInputError

DEMO_IMAGE_SIZE = 160


@dataclass(frozen=True, slots=True)
class DemoSource:
    """Where the demo's data lies.

    Attributes:
        labeled: The seed dataset (``data.yaml``, train and val splits) the first model trains on.
        pool_images: Unlabeled images active learning selects from.
        pool_truth: The pool's labels (``data.yaml``), read only by the simulated annotator.
        heldout_coco: COCO ground truth of the held-out images every model is judged on.
    """

    labeled: Path
    pool_images: Path
    pool_truth: Path
    heldout_coco: Path


def write_demo_source(
    out_dir: Path, labeled_count: int = 48, pool_count: int = 240, heldout_count: int = 60, seed: int = 0
) -> DemoSource:
    """Write (or rewrite identically) the demo's seed, pool and held-out sets under ``out_dir``.

    Args:
        out_dir: Folder for ``labeled/``, ``pool/`` and ``heldout/``.
        labeled_count: Seed training images (a quarter as many again for validation).
        pool_count: Unlabeled pool images.
        heldout_count: Held-out images.
        seed: The same seed writes the same bytes.
    """
    if min(labeled_count, pool_count, heldout_count) < 4:
        raise InvalidInputError(
            f"expected at least 4 images per set, got labeled {labeled_count}, pool {pool_count}, "
            f"held-out {heldout_count}"
        )
    size = DEMO_IMAGE_SIZE
    labeled = generate_scenes(out_dir / "labeled", labeled_count, max(labeled_count // 4, 1), size, seed)
    pool = generate_scenes(out_dir / "pool", pool_count, 1, size, seed + 1)
    heldout = generate_scenes(out_dir / "heldout", 1, heldout_count, size, seed + 2)
    return DemoSource(labeled.root, pool.root / "images" / "train", pool.root, heldout.coco_val)
