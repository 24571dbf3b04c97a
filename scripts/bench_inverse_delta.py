"""What a perfect fine-tuning through the inverse of π^Δ would reach: the pretrained policy with the inverse π^Δ in
the loop, on a protocol target and on the aligned simulator.

For each π^Δ and each number of fixed-point iterations K, the policy's joint targets q* (shaped as the runtime shapes
them) are replaced by :func:`asap.delta.inverse.inverse_targets` before every step, below the env's target shaping,
and the episode from the clip's start is scored (`asap eval`'s protocol-target path, one deterministic episode):

* ``target``: the protocol target with the gap (``--gap``): the composite as it would act on the robot. When π^Δ
  were exact, this is the pretrained policy's tracking in its own simulator;
* ``aligned``: the training simulator with π^Δ in every step (what `asap finetune` trains on), with the composite:
  near the pretrained policy's own tracking when the inverse converges there, far from it when π^Δ's Δa changes with
  the action as fast as the action (the aligned simulator then ignores the command; see the ``sensitivity`` columns
  of scripts/bench_delta_transfer.py).

The composite needs π^Δ at run time; ``asap finetune method=inverse`` distils it into one policy. Example::

    python scripts/bench_inverse_delta.py --policy run/demo/pretrain/policy.onnx \\
        --motion run/demo/motions/arm_wave.npz --gap configs/real_gap/ankle_weak.yaml \\
        --delta run/demo/delta/delta.pt oracle:configs/real_gap/ankle_weak.yaml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

import asap.eval.closed_loop as cl
from asap.delta.aligned import AlignedSimulator
from asap.delta.inverse import inverse_targets
from asap.delta.oracle import load_delta


class InverseDeltaSimulator(AlignedSimulator):
    """A simulator whose joint-target steps go through the inverse of ``model`` (K iterations) first: the targets it
    is given are those the gapped robot (or ``inner``, when it is itself aligned with ``model``) should apply."""

    def __init__(self, inner: Any, model: Any, iterations: int, passthrough_steps: int = 0) -> None:
        super().__init__(inner, model)
        self.iterations = iterations
        self.passthrough_steps = passthrough_steps
        """The first steps send their targets unchanged (a hand-over policy acts there, not the composite)."""
        self.steps = 0

    def step(self, targets: torch.Tensor | None = None, torques: torch.Tensor | None = None) -> None:
        """One step with ``targets`` replaced by their inverse; Δa bookkeeping as the aligned simulator's."""
        if targets is None:
            self.sim.step(targets=None, torques=torques)
            return
        self.steps += 1
        q = targets.to(self.sim.device, torch.float32)
        if self.steps > self.passthrough_steps:
            q = inverse_targets(self, q, self.iterations)
        self.record_step(q)
        self.sim.step(targets=q)


def composite_episode(policy: str, motion: str, gap: str | None, delta: str, iterations: int, aligned: bool,
                      start_from: list[str] | None = None, hand_over: str = "", hand_over_steps: int = 0,
                      ) -> dict[str, Any]:  # fmt: skip
    """One episode from the clip's start of ``policy`` through the inverse of ``delta`` on the protocol target with
    ``gap`` (``aligned``: on the training simulator aligned with ``delta`` instead); the episode record's success and
    errors (mm). ``start_from``: logged episodes whose first frame is the start state (`asap eval --start-from`);
    ``hand_over``: another policy that acts alone (no inverse) for the first ``hand_over_steps`` steps."""
    model = load_delta(delta)
    make_target, load = cl.GapSimulator, cl.load_policy
    first = hand_over_steps if hand_over else 0

    def wrapped(cfg: Any, g: Any, seed: int = 0) -> Any:
        inner = make_target(cfg, None if aligned else g, seed=seed)
        if aligned:
            inner = AlignedSimulator(inner, model)
        return InverseDeltaSimulator(inner, model, iterations, passthrough_steps=first)

    def load_pair(pol: Any, lib: Any, variant: str) -> Any:
        act, facts = load(pol, lib, variant=variant)
        if not first:
            return act, facts
        act_first, _ = load(cl.load_eval_policy(hand_over)[0], lib, variant=variant)
        calls = [0]

        def switched(obs: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            return act_first(obs) if calls[0] <= first else act(obs)

        return switched, facts

    cl.GapSimulator, cl.load_policy = wrapped, load_pair  # type: ignore[assignment,misc]
    try:
        pol, variant = cl.load_eval_policy(policy)
        es = cl.run_on_target(pol, variant, motion, gap=gap, episodes=1, start_from=start_from or ())
    finally:
        cl.GapSimulator, cl.load_policy = make_target, load  # type: ignore[misc]
    e = es.episodes[0]
    return {k: e.get(k) for k in ("success", "steps", "expected_steps", "E_g_mpjpe", "E_mpjpe", "E_acc")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", required=True, help="the pretrained policy (policy.onnx or a checkpoint)")
    ap.add_argument("--motion", required=True, help="its clip")
    ap.add_argument("--gap", required=True, help="the target's gap profile (configs/real_gap/*.yaml)")
    ap.add_argument("--delta", nargs="+", required=True, help="delta.pt files or oracle:<gap.yaml>")
    ap.add_argument("--iterations", nargs="+", type=int, default=[1, 2, 4, 8], help="fixed-point iterations K")
    ap.add_argument(
        "--start-from",
        nargs="+",
        default=[],
        metavar="LOGS",
        help="start from the first frame of these logged episodes (the runtime's support-release start)",
    )
    ap.add_argument(
        "--hand-over",
        default="",
        metavar="POLICY",
        help="a policy that acts alone for the first --hand-over-steps steps, before the composite",
    )
    ap.add_argument("--hand-over-steps", type=int, default=0, help="steps of --hand-over (default 0)")
    ap.add_argument("--json", default="", help="also write the rows here")
    args = ap.parse_args(argv)
    rows = []
    print(f"{'delta':42s} {'K':>2s} {'where':8s} {'success':>7s} {'steps':>9s} {'E_g-mpjpe':>9s} {'E_mpjpe':>8s}")
    for d in args.delta:
        for k in args.iterations:
            for aligned in (False, True):
                r = composite_episode(args.policy, args.motion, args.gap, d, k, aligned, args.start_from,
                                      args.hand_over, args.hand_over_steps)  # fmt: skip
                r.update({"delta": d, "iterations": k, "where": "aligned" if aligned else "target"})
                rows.append(r)
                steps = f"{r['steps']:4d}/{r['expected_steps']:<4d}"
                print(f"{d[-42:]:42s} {k:2d} {r['where']:8s} {str(bool(r['success'])):>7s} {steps} "
                      f"{r['E_g_mpjpe']:9.1f} {r['E_mpjpe']:8.1f}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
