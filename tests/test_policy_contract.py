"""The policy contract identifies its clip and physics, and every ONNX interface is checked when it is loaded.

Real files in tmp_path: tiny torch modules exported to ONNX with wrong input counts, widths, output widths and
fixed batches; real motion files in every format; `asap play` and `asap deploy` through the CLI.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from asap.contract import (
    ClipFingerprint,
    ContractError,
    OnnxPolicy,
    PolicyContract,
    clip_fingerprint,
    motion_fingerprint,
)
from asap.motion.motion import Motion
from asap.motion.synthetic import synthetic_motion
from deploy.contract import write_metadata
from deploy.testing import make_policy


def _export(module: torch.nn.Module, path: Path, inputs: dict[str, tuple[int, ...]], dynamic: bool = True,
            contract: PolicyContract | None = None, outputs: tuple[str, ...] = ("action",)) -> Path:  # fmt: skip
    """Export ``module`` with the given named inputs (shapes with batch first); metadata from ``contract``."""
    args = tuple(torch.zeros(*s) for s in inputs.values())
    axes = {n: {0: "batch"} for n in (*inputs, *outputs)} if dynamic else None
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exact for these small graphs
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module.eval(), args, str(path), input_names=list(inputs), output_names=list(outputs),
                          dynamic_axes=axes, opset_version=17, dynamo=False)  # fmt: skip
    if contract is not None:
        write_metadata(path, contract.to_metadata())
    return path


class TwoInputs(torch.nn.Module):
    def __init__(self, width: int, out: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(width, out)

    def forward(self, obs: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        return self.lin(obs) + extra.sum(dim=1, keepdim=True)


def _contract(variant: str = "g1_23dof", **kw) -> PolicyContract:
    return PolicyContract.for_robot(variant, "asap_v1", "clip", 0.4, **kw)


def _one_line(msg: str) -> None:
    assert "\n" not in msg and msg


# ------------------------------------------------------------------------------------------- ONNX interface
def test_interface_mismatches_fail_at_load_in_one_line(tmp_path):
    c = _contract()
    # one input of the right width and an action per joint: loads and runs
    good = _export(torch.nn.Linear(380, 23), tmp_path / "good.onnx", {"actor_obs": (1, 380)}, contract=c)
    pol = OnnxPolicy(good)
    assert pol(np.zeros(380)).shape == (23,) and pol(np.zeros((5, 380))).shape == (5, 23)

    cases = {
        "two_inputs": (TwoInputs(380, 23), {"actor_obs": (1, 380), "extra": (1, 4)}, True,
                       r"has 2 inputs \(actor_obs, extra\); a policy takes exactly one"),
        "narrow": (torch.nn.Linear(300, 23), {"actor_obs": (1, 300)}, True, r"has width 300, but layout asap_v1 .* "
                   r"needs 380"),
        "29_actions": (torch.nn.Linear(380, 29), {"actor_obs": (1, 380)}, True,
                       r"has 29 actions, but robot variant g1_23dof has 23 joints"),
        "fixed_batch": (torch.nn.Linear(380, 23), {"actor_obs": (8, 380)}, False, r"fixed batch of 8"),
    }  # fmt: skip
    for name, (module, inputs, dynamic, pattern) in cases.items():
        path = _export(module, tmp_path / f"{name}.onnx", inputs, dynamic=dynamic, contract=c)
        with pytest.raises(ContractError, match=pattern) as e:
            OnnxPolicy(path)
        _one_line(str(e.value))
        assert str(path) in str(e.value)


def test_plain_model_checks_against_the_named_variant(tmp_path):
    # no metadata (a reference-style model): width and action count are checked against layout/variant given
    m29 = _export(torch.nn.Linear(380, 29), tmp_path / "m29.onnx", {"actor_obs": (1, 380)}, dynamic=False)
    with pytest.raises(ContractError, match=r"29 actions, but robot variant g1_23dof .* give variant g1_29dof"):
        OnnxPolicy(m29, layout="asap_v1", variant="g1_23dof")
    with pytest.raises(ContractError, match="width 380, but layout asap_v1 with 29 joints"):
        OnnxPolicy(m29, layout="asap_v1", variant="g1_29dof")  # g1_29dof observations are wider
    with pytest.raises(ContractError, match="holds no policy contract"):
        OnnxPolicy(m29)  # the runtime never guesses a contract


def test_symbolic_width_is_checked_by_a_trial_run(tmp_path):
    # a width the graph does not declare (dynamic) is caught by running zeros of the contract's width at load
    path = tmp_path / "sym.onnx"
    _export(torch.nn.Linear(300, 23), path, {"actor_obs": (1, 300)}, contract=_contract())
    import onnx

    model = onnx.load(str(path))  # make the width symbolic, as some exporters write it
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "width"
    onnx.save(model, str(path))
    with pytest.raises(ContractError, match=r"fails on observations of shape \(2, 380\)") as e:
        OnnxPolicy(path)
    _one_line(str(e.value))


def test_cli_play_and_deploy_refuse_a_bad_interface_in_one_line(tmp_path, capsys):
    from asap.cli import main

    motion = synthetic_motion(num_frames=11, fps=50, speed=(0, 0, 0), yaw_rate=0.0).save(tmp_path / "m.npz")
    bad = _export(TwoInputs(380, 23), tmp_path / "two.onnx", {"actor_obs": (1, 380), "extra": (1, 4)})
    assert main(["play", str(bad), "--motion", str(motion), "--no-video", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "2 inputs" in err[0]
    m29 = _export(torch.nn.Linear(380, 29), tmp_path / "m29.onnx", {"actor_obs": (1, 380)}, contract=None)
    rc = main(["play", str(m29), "--motion", str(motion), "--no-video", "--variant", "g1_23dof"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "29 actions, but robot variant g1_23dof has 23 joints" in err[0]
    write_metadata(m29, _contract().to_metadata())
    assert main(["deploy", "--policy", str(m29), "--dry-run", "--net", "lo", "--seconds", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "29 actions" in err[0]


# ------------------------------------------------------------------------------------------- clip fingerprint
def test_fingerprint_is_stable_across_formats(tmp_path):
    from asap.motion.formats import read_motion, write_asap_pkl, write_mjlab_npz, write_unitree_csv
    from asap.motion.motionlib import MotionLib
    from asap.rl.export import clip_fingerprints

    m = synthetic_motion(num_frames=40, fps=50, amplitude=0.3, seed=3)
    m.dof_pos[0, 0] = -0.0
    m.dof_pos += 1e-9 * np.random.default_rng(0).normal(size=m.dof_pos.shape)  # float64 noise below float32
    want = motion_fingerprint(m, "g1_23dof", name="x")
    assert want.frames == 40 and want.fps == 50.0 and len(want.sha256) == 64
    npz = m.save(tmp_path / "x.npz")
    pkl = write_asap_pkl(m, tmp_path / "x.pkl")
    csv = write_unitree_csv(m, tmp_path / "x.csv")
    mj = write_mjlab_npz(m, tmp_path / "x_mjlab.npz")
    back = {
        "npz": read_motion(npz), "pkl": read_motion(pkl), "csv": read_motion(csv, fps=50), "mjlab": read_motion(mj),
        "pkl->npz": read_motion(read_motion(pkl).save(tmp_path / "y.npz")),
    }  # fmt: skip
    for fmt, mm in back.items():
        assert motion_fingerprint(mm, "g1_23dof", name="x") == want, fmt
    # the exporter's view (MotionLib, float32 tensors) and the file path give the same fingerprint
    assert clip_fingerprints(MotionLib(pkl))[0].same_clip(want)
    assert motion_fingerprint(npz, "g1_23dof") == replace(want, name="x")
    # what changes the clip changes the fingerprint
    q = m.dof_pos.copy()
    q[7, 3] += 1e-4
    assert not clip_fingerprint(q, 50).same_clip(want)
    assert not clip_fingerprint(m.dof_pos, 30).same_clip(want)
    assert not clip_fingerprint(m.dof_pos[:-1], 50).same_clip(want)
    # the 29-DoF view of the same clip is another joint table
    m29 = synthetic_motion(num_frames=40, fps=50, amplitude=0.3, seed=3, spec="g1_29dof")
    assert motion_fingerprint(m29, "g1_29dof").sha256 != motion_fingerprint(m29, "g1_23dof").sha256


def test_contract_carries_clips_and_physics(tmp_path):
    m = synthetic_motion(num_frames=21, fps=50, speed=(0, 0, 0), yaw_rate=0.0)
    fp = motion_fingerprint(m, "g1_23dof", "a")
    c = _contract(clips=(fp,), residual_actions=True, physics={"integrator": "implicitfast", "floor_friction": 1.0})
    back = PolicyContract.from_metadata(c.to_metadata())
    assert back.clip == fp and back.residual_actions is True and back.physics == c.physics
    assert back.sim_dt == 0.005 and back.decimation == 4
    meta = c.to_metadata()
    for key, value, pattern in [
        ("clips", "[1,2]", "not a list of clip fingerprints"),
        ("clip_index", "3", "outside clips"),
        ("motion_length_s", "0.5", "disagrees with its clip"),
        ("decimation", "5", "is not control_dt"),
        ("physics", "[]", "not a JSON object"),
        ("residual_actions", "maybe", "not 'true' or 'false'"),
    ]:
        with pytest.raises(ContractError, match=pattern):
            PolicyContract.from_metadata({**meta, key: value})
    other = motion_fingerprint(synthetic_motion(num_frames=21, fps=50, amplitude=0.1), "g1_23dof", "b")
    with pytest.raises(ContractError, match=r"trained for clip 'a' \(21 frames at 50 fps.*the motion is clip 'b'"):
        back.check_motion(other, "p.onnx")
    back.check_motion(replace(fp, name="renamed"))  # a renamed file is the same clip
    # a non-residual policy runs any clip it was trained on in play, only its own on the robot
    two = replace(back, clips=(fp, other), residual_actions=False)
    two.check_motion(other)
    with pytest.raises(ContractError, match="use the file exported for 'b'"):
        two.check_motion(other, runtime=True)


def _clip_policy(tmp_path: Path, motion: Motion, name: str, **kw) -> Path:
    from deploy.testing import test_contract

    fp = motion_fingerprint(motion, "g1_23dof", name)
    c = replace(test_contract(motion_length_s=motion.duration, motion_name=name), clips=(fp,),
                residual_actions=False, **kw)  # fmt: skip
    return make_policy(tmp_path / f"{name}.onnx", c, out_scale=0.0)


def test_play_refuses_another_clip(tmp_path, capsys):
    from asap.cli import main
    from asap.rl.play import play

    a = synthetic_motion(num_frames=11, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05)
    b = synthetic_motion(num_frames=11, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05, seed=1)
    pa, pb = a.save(tmp_path / "a.npz"), b.save(tmp_path / "b.npz")
    pol = _clip_policy(tmp_path, a, "a")
    s = play(pol, pa, out_dir=tmp_path / "ok", video=False)  # its own clip plays
    assert s["num_rollouts"] == 1
    with pytest.raises(ContractError, match=r"trained for clip 'a' .* the motion is clip 'b'"):
        play(pol, pb, out_dir=tmp_path / "no", video=False)
    rc = main(["play", str(pol), "--motion", str(pb), "--no-video", "--out", str(tmp_path / "cli")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("error: ") and "'a'" in err[0] and "'b'" in err[0]
    # physics: a policy trained at another physics step is refused by the simulator that steps 5 ms x 4
    odd = _clip_policy(tmp_path, a, "odd", sim_dt=0.002, decimation=10)
    with pytest.raises(ContractError, match="trained with sim_dt 0.002 s and decimation 10"):
        play(odd, pa, out_dir=tmp_path / "odd", video=False)


def test_deploy_refuses_another_clip(tmp_path, capsys):
    from asap.cli import main
    from deploy.commands import check_motion_arg

    a = synthetic_motion(num_frames=11, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05)
    b = synthetic_motion(num_frames=11, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05, seed=1)
    pa, pb = a.save(tmp_path / "a.npz"), b.save(tmp_path / "b.npz")
    pol = _clip_policy(tmp_path, a, "a")
    check_motion_arg(OnnxPolicy(pol), str(pa))  # its own clip passes (also from another format)
    from asap.motion.formats import write_asap_pkl

    check_motion_arg(OnnxPolicy(pol), str(write_asap_pkl(a, tmp_path / "a.pkl")))
    for cmd in (
        ["deploy", "--policy", str(pol), "--motion", str(pb), "--dry-run", "--net", "lo", "--seconds", "1"],
        ["collect", "--policy", str(pol), "--motion", str(pb), "--virtual", "--out", str(tmp_path / "c")],
    ):
        assert main(cmd) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "'a'" in err[0] and "'b'" in err[0], err
    # the check reads our npz with NumPy alone (the onboard computer has no MuJoCo or torch)
    code = ("import sys; from deploy.commands import check_motion_arg; from deploy.contract import OnnxPolicy; "
            f"check_motion_arg(OnnxPolicy({str(pol)!r}), {str(pa)!r}); "
            "print(sorted(m for m in ('torch', 'mujoco', 'envs', 'asap.rl') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # a policy without fingerprints cannot be checked: --motion is refused rather than ignored
    plain = make_policy(tmp_path / "plain.onnx")
    with pytest.raises(ContractError, match="carries no clip fingerprint"):
        check_motion_arg(OnnxPolicy(plain), str(pa))


def test_fingerprint_from_dict_roundtrip():
    fp = clip_fingerprint(np.zeros((3, 23)), 30.0, "z")
    assert ClipFingerprint.from_dict(fp.to_dict()) == fp
    with pytest.raises(ValueError):
        ClipFingerprint.from_dict({"name": "z", "frames": 3})
    with pytest.raises(ValueError, match="NaN"):
        clip_fingerprint(np.full((3, 23), np.nan), 30.0)
