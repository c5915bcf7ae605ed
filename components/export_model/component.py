"""Export every variant of the trained checkpoint and keep those that pass the accuracy gate."""

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def export_model(
    checkpoint_path: str,
    heldout_uri: str,
    imgsz: int,
    calibration_dir: str,
    max_map_drop: float,
    packages: dsl.Output[dsl.Model],
    metrics: dsl.Output[dsl.Metrics],
) -> str:
    """Write ``packages/fp32`` and each accepted variant, plus ``gate.json``; return accepted names."""
    from pathlib import Path

    from cvops.loop.release import export_and_gate

    calibration = Path(calibration_dir) if calibration_dir else None
    gated = export_and_gate(
        checkpoint_path, Path(heldout_uri), Path(packages.path), imgsz, calibration, max_map_drop
    )
    for key, value in gated.metrics.items():
        metrics.log_metric(key, value)
    packages.metadata.update({"accepted": sorted(gated.accepted), "rejected": gated.rejected})
    return ",".join(sorted(gated.accepted))
