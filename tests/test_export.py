"""ONNX export: deploy-contract metadata, dynamic batch, parity with the checkpoint; `asap play` on .pt and .onnx."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from asap.config import load_config
from asap.contract import OPTIONAL_KEYS, OnnxPolicy
from asap.motion.motion import Motion
from asap.motion.motionlib import MotionLib
from asap.motion.synthetic import synthetic_motion
from asap.rl.config import PretrainConfig
from asap.rl.export import CONTRACT_KEYS, PolicyContract, TrackingPolicy, policy_from_checkpoint

TINY = ["num_envs=2", "threads=1", "ppo.num_steps_per_env=4", "ppo.actor_hidden_dims=[32,16]",
        "ppo.critic_hidden_dims=[16]", "ppo.num_mini_batches=1", "ppo.num_learning_epochs=1",
        "run.eval_start_phases=1", "run.logger=none", "run.max_iterations=2", "ppo.obs_normalization=true"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from asap.rl.runner import pretrain

    d = tmp_path_factory.mktemp("exp")
    motion = d / "clip.npz"
    synthetic_motion(num_frames=21, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05).save(motion)
    cfg = load_config(PretrainConfig, None, [f"motion={motion}", f"run.out_dir={d / 'run'}",
                                              "env.residual_actions=true", *TINY])  # fmt: skip
    pretrain(cfg)
    return d / "run", motion


def test_contract_metadata_roundtrip():
    c = PolicyContract.for_robot("g1_23dof", "asap_v1", "squat", 5.2)
    meta = c.to_metadata()
    assert tuple(meta)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS and set(meta) - set(CONTRACT_KEYS) <= set(OPTIONAL_KEYS)
    assert meta["sim_dt"] == "0.005" and meta["decimation"] == "4"
    assert meta["obs_dim"] == "380" and meta["history_length"] == "4" and meta["control_dt"] == "0.02"
    assert [float(x) for x in meta["default_joint_pos"].split(",")[:4]] == [-0.1, 0.0, 0.0, 0.3]
    back = PolicyContract.from_metadata(meta)
    assert back.joint_names == c.joint_names and np.allclose(back.kp, c.kp) and back.motion_length_s == 5.2
    with pytest.raises(ValueError, match="lacks"):
        PolicyContract.from_metadata({"kp": "1"})


def test_onnx_matches_checkpoint_and_has_contract(trained):
    run, motion = trained
    path = run / "policy.onnx"
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert set(CONTRACT_KEYS) <= set(meta) and meta["motion_name"] == "clip" and meta["robot_variant"] == "g1_23dof"
    assert float(meta["motion_length_s"]) == pytest.approx(0.4)
    start = [float(x) for x in meta["start_joint_pos"].split(",")]  # the clip's first frame, for the runtime
    np.testing.assert_allclose(start, Motion.load(motion).for_robot("g1_23dof").dof_pos[0], atol=1e-6)
    assert [i.name for i in model.graph.input] == ["actor_obs"] and [o.name for o in model.graph.output] == ["action"]
    # dynamic batch
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    lib = MotionLib(str(motion))
    ck = sorted(run.glob("model_*.pt"))[-1]
    pol, infos = policy_from_checkpoint(ck, ref_dof_pos=lib.frame_data("dof_pos", 0).numpy())
    assert pol.residual and infos["config"].env.residual_actions
    ox = OnnxPolicy(path)
    assert ox.has_metadata and ox.contract.obs_dim == 380
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, 380)).astype(np.float32)
    obs[:, 379] = rng.uniform(0, 1, 64)  # phase column drives the residual lookup
    obs[:3, 379] = [0.0, 1.0, 0.5]
    with torch.no_grad():
        want = pol(torch.from_numpy(obs)).numpy()
    got = ox(obs)
    assert got.shape == (64, 23)
    assert np.abs(got - want).max() <= 1e-5


def test_residual_lookup_matches_the_env_reference():
    # residual table lookup by phase equals the MotionLib interpolation the env uses in training
    m = synthetic_motion(num_frames=11, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.2)
    lib = MotionLib([m])
    q = lib.frame_data("dof_pos", 0)
    default = torch.zeros(23)
    table = (q - default) / 0.25
    zero = torch.nn.Linear(380, 23)
    torch.nn.init.zeros_(zero.weight)
    torch.nn.init.zeros_(zero.bias)
    pol = TrackingPolicy(zero, table, phase_index=379)
    t = torch.tensor([0.0, 0.013, 0.1, 0.17, 0.2])
    obs = torch.zeros(5, 380)
    obs[:, 379] = t / lib.motion_lengths[0]
    ref = lib.get_state(torch.zeros(5, dtype=torch.long), t).dof_pos / 0.25
    assert torch.allclose(pol(obs), ref, atol=1e-5)


def test_play_checkpoint_and_reference_style_onnx(trained, tmp_path):
    from asap.rl.play import play

    run, motion = trained
    ck = sorted(run.glob("model_*.pt"))[-1]
    js = tmp_path / "pt.json"
    s = play(ck, motion, out_dir=tmp_path / "pt", json_path=js, video=False)
    data = json.loads(js.read_text())
    assert {"success", "steps_survived", "E_mpjpe_mm", "E_g_mpjpe_mm"} <= set(data)
    assert (tmp_path / "pt" / "errors.csv").read_text().startswith("step,time_s,alive,E_mpjpe_mm")
    # the exported ONNX played the same way gives the same rollout
    s2 = play(run / "policy.onnx", motion, out_dir=tmp_path / "onnx", video=False)
    assert s2["steps_survived"] == s["steps_survived"]
    assert s2["E_mpjpe_mm"] == pytest.approx(s["E_mpjpe_mm"], abs=0.05)

    # a reference-style model: batch fixed at 1, no metadata -> layout/variant from flags
    plain = tmp_path / "ref_style.onnx"
    mlp = torch.nn.Sequential(torch.nn.Linear(380, 8), torch.nn.ELU(), torch.nn.Linear(8, 23))
    torch.onnx.export(mlp, (torch.zeros(1, 380),), str(plain), input_names=["actor_obs"], output_names=["action"],
                      opset_version=13, dynamo=False)  # fmt: skip
    ox = OnnxPolicy(plain, layout="asap_v1", variant="g1_23dof")
    assert not ox.has_metadata and ox.fixed_batch == 1
    assert ox(np.zeros((3, 380), np.float32)).shape == (3, 23)
    s3 = play(plain, motion, out_dir=tmp_path / "plain", video=False, layout="asap_v1", variant="g1_23dof",
              start_phases=2)  # fmt: skip
    assert s3["num_rollouts"] == 2 and s3["policy_kind"] == "onnx"
    with pytest.raises(ValueError, match="width"):
        OnnxPolicy(plain, layout="asap_v1", variant="g1_29dof")


def test_cli_play_writes_json(trained, tmp_path):
    from asap.cli import main

    run, motion = trained
    js = tmp_path / "p.json"
    rc = main(["play", str(run / "policy.onnx"), "--motion", str(motion), "--json", str(js), "--no-video",
               "--out", str(tmp_path / "o")])  # fmt: skip
    assert rc in (0, 3)
    d = json.loads(js.read_text())
    assert d["success"] == (rc == 0) and len(d["steps_survived"]) == 1


def test_play_writes_video(trained, tmp_path):
    from asap.rl.play import play

    run, motion = trained
    s = play(run / "policy.onnx", motion, out_dir=tmp_path / "v", video=True)
    if "video_error" in s:
        pytest.skip(f"offscreen rendering unavailable: {s['video_error']}")
    assert (tmp_path / "v" / "play.mp4").stat().st_size > 1000


def test_export_carries_clip_fingerprint_and_physics(trained, tmp_path):
    import dataclasses

    from asap.contract import ContractError, motion_fingerprint
    from asap.rl.play import play
    from asap.robot.model import ModelOptions

    run, motion = trained
    c = OnnxPolicy(run / "policy.onnx").contract
    # the exporter's fingerprint (from the training MotionLib) is the one of the clip's file, in any format
    from asap.motion.formats import write_asap_pkl

    pkl = write_asap_pkl(Motion.load(motion), tmp_path / "clip.pkl")
    assert c.clip == motion_fingerprint(motion, "g1_23dof") and c.clip.same_clip(motion_fingerprint(pkl, "g1_23dof"))
    assert c.residual_actions is True and len(c.clips) == 1 and c.clip_index == 0
    assert c.physics == dataclasses.asdict(ModelOptions()) and (c.sim_dt, c.decimation) == (0.005, 4)
    # the residual table inside the graph belongs to this clip: another clip is refused, .onnx and .pt alike
    other = synthetic_motion(num_frames=21, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.08, seed=4)
    other_path = other.save(tmp_path / "other.npz")
    with pytest.raises(ContractError, match=r"trained for clip 'clip' \(21 frames at 50 fps.*motion is clip 'other'"):
        play(run / "policy.onnx", other_path, out_dir=tmp_path / "x", video=False)
    ck = sorted(run.glob("model_*.pt"))[-1]
    with pytest.raises(ContractError, match="motion is clip 'other'"):
        play(ck, other_path, out_dir=tmp_path / "y", video=False)
    s = play(run / "policy.onnx", pkl, out_dir=tmp_path / "z", video=False)  # same clip, another format: plays
    assert s["num_rollouts"] == 1


def test_multi_clip_export_has_every_clip(tmp_path):
    from asap.contract import ContractError, motion_fingerprint
    from asap.rl.play import play
    from asap.rl.runner import pretrain

    clips = tmp_path / "clips"
    clips.mkdir()
    for k, name in enumerate(("bow", "wave")):
        synthetic_motion(num_frames=16 + 5 * k, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05,
                         seed=k).save(clips / f"{name}.npz")  # fmt: skip
    cfg = load_config(PretrainConfig, None, [f"motion={clips}", f"run.out_dir={tmp_path / 'run'}",
                                              "env.residual_actions=true", *TINY, "run.max_iterations=1"])  # fmt: skip
    result = pretrain(cfg)
    run = tmp_path / "run"
    files = {n: run / f"policy_{n}.onnx" for n in ("bow", "wave")}
    assert result["onnx_per_clip"] == {n: str(p) for n, p in files.items()}
    fps = {n: motion_fingerprint(clips / f"{n}.npz", "g1_23dof") for n in files}
    for k, (name, path) in enumerate(files.items()):
        c = OnnxPolicy(path).contract
        assert [x.name for x in c.clips] == ["bow", "wave"] and c.clip_index == k and c.clip == fps[name]
        assert c.motion_name == name and c.motion_length_s == pytest.approx((fps[name].frames - 1) / 50)
    assert OnnxPolicy(run / "policy.onnx").contract.clip == fps["bow"]
    # each file carries its own clip's residual table: it plays that clip like the checkpoint does
    ck = sorted(run.glob("model_*.pt"))[-1]
    s_pt = play(ck, clips / "wave.npz", out_dir=tmp_path / "pt", video=False)
    s_onnx = play(files["wave"], clips / "wave.npz", out_dir=tmp_path / "onnx", video=False)
    assert s_onnx["steps_survived"] == s_pt["steps_survived"]
    assert s_onnx["E_mpjpe_mm"] == pytest.approx(s_pt["E_mpjpe_mm"], abs=0.05)
    # and names the right file when given another trained clip
    with pytest.raises(ContractError, match="use the file exported for 'wave'"):
        play(run / "policy.onnx", clips / "wave.npz", out_dir=tmp_path / "no", video=False)


def test_export_records_the_training_target_shaping(tmp_path):
    """A policy trained with another shaping rule carries it in its contract (the runtime then applies it)."""
    from asap.config import load_config
    from asap.contract import OnnxPolicy
    from asap.control import TargetShaping
    from asap.motion.motionlib import MotionLib
    from asap.motion.synthetic import synthetic_motion
    from asap.obs import get_layout
    from asap.rl.config import PretrainConfig
    from asap.rl.export import export_tracking_policy

    cfg = load_config(PretrainConfig, None, ["env.target_shaping.clamp=false", "env.target_shaping.max_step=0"])
    lib = MotionLib([synthetic_motion(num_frames=10, fps=50)])
    mlp = torch.nn.Linear(get_layout(cfg.env.obs_layout).dim("actor", 23), 23)
    path = export_tracking_policy(mlp, cfg, lib, tmp_path / "p.onnx")
    assert OnnxPolicy(path).contract.shaping == TargetShaping(clamp=False, max_step=0.0)


def test_asap_export_writes_the_policy_training_writes(trained, tmp_path, capsys):
    """`asap export CK` gives the ONNX (graph outputs and contract) that training exported for the same networks;
    the robot paths given a checkpoint say so in one line and name the command."""
    from asap.cli import main
    from asap.contract import ContractError

    run, _ = trained
    ck = max(run.glob("model_*.pt"), key=lambda p: int(p.stem[6:]))  # the final checkpoint: what policy.onnx holds
    assert main(["export", str(ck), "--out", str(tmp_path / "p.onnx")]) == 0
    assert capsys.readouterr().out.strip() == f"exported {ck} -> {tmp_path / 'p.onnx'}"
    mine, theirs = OnnxPolicy(tmp_path / "p.onnx"), OnnxPolicy(run / "policy.onnx")
    assert mine.contract.to_metadata() == theirs.contract.to_metadata()
    obs = np.random.default_rng(1).normal(size=(8, 380)).astype(np.float32)
    obs[:, 379] = np.linspace(0, 1, 8)
    np.testing.assert_array_equal(mine(obs), theirs(obs))
    assert main(["export", str(run), "--out", str(tmp_path / "q.onnx")]) == 0  # a run folder: its final checkpoint
    assert capsys.readouterr().out.strip() == f"exported {run} -> {tmp_path / 'q.onnx'}"
    np.testing.assert_array_equal(OnnxPolicy(tmp_path / "q.onnx")(obs), theirs(obs))
    with pytest.raises(ContractError, match=rf"is a training checkpoint; .*`asap export {ck}`"):
        OnnxPolicy(ck)
    assert main(["export", str(run / "policy.onnx")]) == 1
    assert "not a checkpoint of `asap pretrain`" in capsys.readouterr().err
