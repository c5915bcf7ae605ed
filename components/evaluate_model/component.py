"""Score the FP32 package on the held-out set: mAP, recall, per-class numbers, latency."""

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def evaluate_model(
    packages: dsl.Input[dsl.Model],
    heldout_uri: str,
    report: dsl.Output[dsl.HTML],
    metrics: dsl.Output[dsl.Metrics],
) -> float:
    """Write the evaluation report (HTML, JSON, figures) and log every number; return mAP50-95."""
    from pathlib import Path

    from cvops.loop.evaluation import evaluate_package

    scores = evaluate_package(Path(packages.path) / "fp32", Path(heldout_uri), Path(report.path))
    for key, value in scores.items():
        metrics.log_metric(key.replace("/", "."), value)
    return scores["map_50_95"]
