"""How much a policy shimmies about the vertical, from the clip's start on a protocol target.

For each policy (``policy.onnx`` or a checkpoint): one deterministic episode from phase 0 on MuJoCo with the gap
profile ``--gap`` (default none), then success, E_mpjpe, E_g-mpjpe (mm), the pelvis yaw rate (RMS of the
frame-to-frame yaw change, deg/s) and the high-pass RMS of the joint angles (the angle minus its Gaussian smoothing
over 2 frames, deg) of the waist yaw and averaged over the joints. docs/delta.md ("Which part of the fine-tuning
loses the clean-start tracking") quotes it. Example::

    python scripts/policy_shimmy.py run/demo/pretrain/model_599.pt run/demo/finetune/policy.onnx \\
        --motion run/demo/motions/arm_wave.npz
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import gaussian_filter1d

from asap.eval.closed_loop import load_eval_policy, run_on_target
from asap.robot.spec import get_spec
from asap.utils.rotations import quat_to_rpy


def main() -> None:
    """Print one line per policy (see module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("policies", nargs="+", help="policy.onnx files or pretraining/fine-tuning checkpoints")
    p.add_argument("--motion", required=True, help="the clip the policies track")
    p.add_argument("--gap", default="configs/real_gap/none.yaml", help="reality-gap profile of the protocol target")
    a = p.parse_args()
    for path in a.policies:
        pol, variant = load_eval_policy(path)
        names = get_spec(variant).joint_names
        es = run_on_target(pol, variant, a.motion, gap=a.gap, episodes=1)
        ep, ro = es.episodes[0], es.rollout
        q = np.asarray(ro.dof_pos, dtype=np.float64)
        hf = np.degrees(np.sqrt(((q - gaussian_filter1d(q, 2.0, axis=0)) ** 2).mean(0)))
        yaw = np.unwrap([quat_to_rpy(np.asarray(x, dtype=np.float64))[2] for x in ro.root_quat])
        yaw_rate = float(np.degrees(np.sqrt((np.diff(yaw) ** 2).mean())) * ro.fps)
        print(f"{path}: success {bool(ep['success'])} E_mpjpe {ep.get('E_mpjpe', float('nan')):.1f} "
              f"E_g-mpjpe {ep.get('E_g_mpjpe', float('nan')):.1f} yaw rate {yaw_rate:.0f} deg/s "
              f"high-pass waist yaw {hf[names.index('waist_yaw_joint')]:.2f} mean {hf.mean():.2f} deg")  # fmt: skip


if __name__ == "__main__":
    main()
