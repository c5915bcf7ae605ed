"""Judge the challenger against the champion (held-out data, replayed traffic); promote or roll back."""

from typing import NamedTuple

from kfp import dsl

from components import CVOPS_IMAGE


@dsl.component(base_image=CVOPS_IMAGE, install_kfp_package=False)
def ab_gate(
    model_name: str,
    tracking_uri: str,
    heldout_uri: str,
    replay_source: str,
    replay_frames: int,
    target: str,
    evidence: dsl.Output[dsl.HTML],
) -> NamedTuple("GateOutputs", [("decision", str), ("champion_version", int)]):  # type: ignore[valid-type]  # KFP reads this form
    """Write ``evidence.json`` and ``summary.html``; move the aliases and the traffic; return the decision."""
    from collections import namedtuple
    from pathlib import Path

    from cvops.loop.rollout import gate_challenger

    outcome = gate_challenger(
        model_name,
        tracking_uri or None,
        Path(heldout_uri),
        replay_source,
        Path(evidence.path),
        replay_frames,
        target,
    )
    GateOutputs = namedtuple("GateOutputs", ["decision", "champion_version"])
    return GateOutputs(outcome.decision, outcome.champion_version or 0)
