"""`asap finetune` on a tiny problem: starts from the pretraining checkpoint, steps through the aligned simulator
with the delta model's own scaling, exports a deployable policy without π^Δ."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
import yaml

from asap.config import load_config
from asap.delta.aligned import AlignedSimulator
from asap.delta.finetune import FinetuneConfig, draw_delta_options, finetune
from asap.delta.model import DeltaMeta, DeltaModel, save_delta
from asap.delta.obs import actor_dim
from asap.motion.synthetic import synthetic_motion
from asap.rl.config import PretrainConfig

TINY = ["num_envs=4", "threads=1", "ppo.num_steps_per_env=4", "ppo.actor_hidden_dims=[16]",
        "ppo.critic_hidden_dims=[16]", "ppo.num_mini_batches=2", "ppo.num_learning_epochs=1",
        "run.eval_start_phases=2", "env.residual_actions=true", "run.logger=none"]  # fmt: skip


def constant_delta(path, value: float, joints: str = "ankles"):
    """A delta.pt whose actor outputs ``value`` on every driven joint (zero weights, bias = value)."""
    from rsl_rl.models import MLPModel
    from tensordict import TensorDict

    meta = DeltaMeta.for_variant("g1_23dof", joints)
    dist = {"class_name": "GaussianDistribution", "init_std": 0.1, "std_type": "scalar"}
    actor_cfg = {"class_name": "MLPModel", "hidden_dims": [8], "activation": "elu", "obs_normalization": False,
                 "distribution_cfg": dist}  # fmt: skip
    kw = {k: v for k, v in actor_cfg.items() if k != "class_name"}
    obs = TensorDict({"actor": torch.zeros(1, actor_dim(23))}, batch_size=[1])
    net = MLPModel(obs, {"actor": ["actor"]}, "actor", len(meta.joints), **kw)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.zero_()
            if name.endswith("bias") and p.shape == (len(meta.joints),):
                p.fill_(value)
    return save_delta(path, meta, actor_cfg, net.state_dict())


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from asap.rl.runner import pretrain

    d = tmp_path_factory.mktemp("ft")
    clip = d / "clip.npz"
    synthetic_motion(num_frames=16, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05).save(clip)
    cfg = load_config(PretrainConfig, None, [f"motion={clip}", f"run.out_dir={d / 'pre'}", "run.max_iterations=2",
                                              *TINY])  # fmt: skip
    r = pretrain(cfg)
    return d, r["checkpoint"]


def test_constant_delta_model_round_trip(tmp_path):
    m = DeltaModel.load(constant_delta(tmp_path / "delta.pt", 0.3))
    out = m(torch.zeros(2, actor_dim(23)))
    idx = m.meta.joint_index()
    assert torch.allclose(out[:, idx], torch.full((2, 4), 0.3), atol=1e-6)
    assert out.abs().sum() == pytest.approx(2 * 4 * 0.3, rel=1e-5)


def test_finetune_runs_on_the_aligned_simulator_and_exports(tmp_path, pretrained, capsys):
    d, ck = pretrained
    delta = constant_delta(tmp_path / "delta.pt", 0.4)
    out = tmp_path / "ft"
    cfg = load_config(FinetuneConfig, None, [f"checkpoint={d / 'pre'}", f"delta={delta}", f"out_dir={out}",
                                              "max_iterations=2", "eval_interval=0"])  # fmt: skip
    r = finetune(cfg)  # the pretraining's run folder: its final checkpoint
    done = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("done: "))
    assert done.startswith("done: max_iterations after 2 iterations (4 with its checkpoint's 2)"), done
    assert yaml.safe_load((out / "finetune.yaml").read_text())["checkpoint"] == str(Path(ck))
    assert (out / "policy.onnx").exists() and (out / "finetune.yaml").exists()
    meta = {p.key: p.value for p in onnx.load(str(out / "policy.onnx")).metadata_props}
    assert "delta" not in json.dumps(meta)  # the deployed policy carries no trace of π^Δ
    assert r["delta_mean_abs"] == pytest.approx(0.4 * 4 / 23, rel=1e-4)  # every env stepped with Δa on the ankles
    assert r["iterations"] >= 1 and json.loads((out / "metrics.json").read_text())["delta"] == str(delta)


def test_finetune_needs_something_to_fine_tune_against(tmp_path, pretrained):
    """Nothing but the pretraining simulator is refused in one line; another simulator (another engine or other
    physics: the target itself, as the benchmark's Oracle on an engine gap) is something to fine-tune against."""
    d, ck = pretrained
    plain = load_config(FinetuneConfig, None, [f"checkpoint={ck}", f"out_dir={tmp_path / 'a'}", "max_iterations=1",
                                                "eval_interval=0"])  # fmt: skip
    with pytest.raises(ValueError, match="nothing to fine-tune against.*pretrain.sim=genesis"):
        finetune(plain)
    other = load_config(FinetuneConfig, None, [f"checkpoint={ck}", f"out_dir={tmp_path / 'b'}", "max_iterations=1",
                                                "eval_interval=0", "pretrain.physics.floor_friction=0.6"])  # fmt: skip
    assert finetune(other)["iterations"] >= 1


def test_finetune_inverse_needs_a_delta_model_and_a_known_method(tmp_path, pretrained):
    d, ck = pretrained
    base = [f"checkpoint={ck}", f"out_dir={tmp_path / 'x'}", "max_iterations=1", "eval_interval=0"]
    with pytest.raises(ValueError, match="method=inverse imitates .* give --delta"):
        finetune(load_config(FinetuneConfig, None, [*base, "method=inverse", "pretrain.physics.floor_friction=0.6"]))
    with pytest.raises(ValueError, match="unknown fine-tuning method 'dagger'"):
        finetune(load_config(FinetuneConfig, None, [*base, "method=dagger"]))


def test_finetune_inverse_imitates_the_pretrained_policy_through_the_inverse_delta(tmp_path, pretrained, capsys):
    """A constant Δa c on the ankles is inverted exactly (q' = q* - s c): the teacher's labels are the pretrained
    actions minus c on the ankles and the same elsewhere, so the imitation error starts at c² on 4 of 23 joints and a
    few DAgger updates move the fine-tuned actor's ankle actions towards -c while the other joints stay near the
    pretrained ones; the export (no π^Δ) is the fine-tuned actor."""
    import csv

    import onnxruntime as ort

    from asap.robot.spec import get_spec

    d, ck = pretrained
    c = 0.8
    delta = constant_delta(tmp_path / "delta.pt", c)
    out = tmp_path / "inv"
    args = [
        f"checkpoint={ck}",
        f"delta={delta}",
        f"out_dir={out}",
        "method=inverse",
        "max_iterations=6",
        "eval_interval=0",
        "inverse.learning_rate=0.01",
        "inverse.teacher_share_iterations=2",
        "inverse.iterations=1",
    ]
    cfg = load_config(FinetuneConfig, None, args)
    r = finetune(cfg)
    assert r["iterations"] >= 6 and (out / "policy.onnx").exists()
    assert "inverse of π^Δ leaves" not in capsys.readouterr().out  # a constant Δa inverts exactly: no warning
    mse = [float(row["distill_mse"]) for row in csv.DictReader((out / "progress.csv").open())]
    assert mse[0] == pytest.approx(c * c * 4 / 23, rel=0.05)  # the untouched student: off by c on the 4 ankles
    assert mse[-1] < 0.5 * mse[0]
    residual = [float(row["inverse_residual"]) for row in csv.DictReader((out / "progress.csv").open())]
    assert max(residual) < 1e-5  # a constant Δa is inverted exactly in one iteration
    # resumed, the teacher is still the pretrained policy (were it the resumed student, its labels would be c off
    # the student again and the error back at its start)
    finetune(load_config(FinetuneConfig, None, [*args, f"resume={r['checkpoint']}", "max_iterations=1"]))
    rows = list(csv.DictReader((out / "progress.csv").open()))
    assert len(rows) == len(mse) + 1 and float(rows[-1]["distill_mse"]) < 0.5 * mse[0]
    share = [float(row["teacher_share"]) for row in rows]
    assert share[:3] == [1.0, 0.5, 0.0] and share[-1] == 0.0  # the DAgger share falls, and a resumed run goes on
    pre, new = (ort.InferenceSession(str(p)) for p in (d / "pre" / "policy.onnx", out / "policy.onnx"))
    x = torch.randn(64, pre.get_inputs()[0].shape[1]).numpy() * 0.1
    name = pre.get_inputs()[0].name
    shift = torch.as_tensor(new.run(None, {name: x})[0]) - torch.as_tensor(pre.run(None, {name: x})[0])
    ank = torch.tensor(["ankle" in name for name in get_spec("g1_23dof").joint_names])
    assert shift[:, ank].mean() < -0.5 * c and shift[:, ~ank].abs().mean() < 0.25 * c


def test_the_pretrained_policy_through_the_exact_inverse_tracks_as_without_the_gap(tmp_path, pretrained):
    """scripts/bench_inverse_delta.py with the oracle of the target's gap: the composite on the gapped target and on
    the aligned simulator both reproduce the policy's episode in the plain simulator (same length, E_mpjpe within 5% of
    what the gap changes in the policy alone)."""
    import sys

    import asap.eval.closed_loop as cl

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import bench_inverse_delta

    d, ck = pretrained
    clip = d / "clip.npz"
    gap = tmp_path / "weak.yaml"
    gap.write_text("name: weak\nkp_scale:\n  ankle: 0.4\n  knee: 0.6\n")
    out = tmp_path / "rows.json"
    args = ["--policy", str(ck), "--motion", str(clip), "--gap", str(gap), "--delta", f"oracle:{gap}",
            "--iterations", "12", "--json", str(out)]  # fmt: skip
    assert bench_inverse_delta.main(args) == 0
    rows = {r["where"]: r for r in json.loads(out.read_text())}
    pol, variant = cl.load_eval_policy(ck)
    plain = cl.run_on_target(pol, variant, clip, gap=None).episodes[0]
    alone = cl.run_on_target(pol, variant, clip, gap=str(gap)).episodes[0]
    off = abs(alone["E_mpjpe"] - plain["E_mpjpe"])  # what the gap does to the policy alone
    print({k: (r["E_mpjpe"], r["steps"]) for k, r in rows.items()}, plain["E_mpjpe"], alone["E_mpjpe"])
    for r in rows.values():
        assert r["steps"] == plain["steps"] and abs(r["E_mpjpe"] - plain["E_mpjpe"]) < 0.05 * off, (r, plain, off)
    # --hand-over for the whole episode: the composite never acts, the gapped target runs the hand-over policy alone
    whole = bench_inverse_delta.composite_episode(str(ck), str(clip), str(gap), f"oracle:{gap}", 12, False,
                                                  hand_over=str(ck), hand_over_steps=10_000)  # fmt: skip
    assert whole["steps"] == alone["steps"] and whole["E_mpjpe"] == pytest.approx(alone["E_mpjpe"], abs=1e-6)


def test_checkpoints_name_their_clips_from_any_directory(tmp_path, monkeypatch):
    """A run trained on a clip named relative to its working directory stores the clip's absolute path, so that
    `asap finetune` finds it from another directory (shipped clip names stay as written); a clip that is gone is
    refused in one line naming the override."""
    from asap.delta.finetune import checkpoint_config
    from asap.rl.runner import portable_motion_spec, pretrain

    work = tmp_path / "work"
    work.mkdir()
    synthetic_motion(num_frames=16, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05).save(work / "clip.npz")
    monkeypatch.chdir(work)
    assert (
        portable_motion_spec("clip.npz, motions/builtin/arm_wave.npz")
        == f"{work / 'clip.npz'},motions/builtin/arm_wave.npz"
    )
    cfg = load_config(PretrainConfig, None, ["motion=clip.npz", "run.out_dir=pre", "run.max_iterations=1", *TINY])
    ck = pretrain(cfg)["checkpoint"]
    monkeypatch.chdir(tmp_path)
    assert checkpoint_config(str(work / ck)).motion == str(work / "clip.npz")
    assert str(work / "clip.npz") in (work / "pre" / "config.yaml").read_text()
    gone = load_config(FinetuneConfig, None, [f"checkpoint={work / ck}", "pretrain.motion=gone.npz"])
    with pytest.raises(
        FileNotFoundError,
        match=r"gone.npz does not exist \(the checkpoint's training clip\): give pretrain.motion=PATH",
    ):
        finetune(gone)


def test_finetune_options_mask_and_scale():
    from asap.sim.base import SimConfig, make_simulator

    sim = make_simulator(SimConfig(num_envs=200, threads=1))
    model = DeltaModel(torch.nn.Linear(actor_dim(23), 23), DeltaMeta.for_variant("g1_23dof"))
    al = AlignedSimulator(sim, model)
    draw_delta_options(al, FinetuneConfig(without_delta_ratio=0.25, delta_scale_range=[0.5, 1.5]))
    assert 0.15 < 1 - al.env_mask.mean().item() < 0.35
    assert al.env_scale.min() >= 0.5 and al.env_scale.max() <= 1.5
    with pytest.raises(ValueError, match="delta_scale_range"):
        draw_delta_options(al, FinetuneConfig(delta_scale_range=[1.5, 0.5]))
    sim.close()


def test_play_with_delta_runs_in_the_aligned_simulator(tmp_path, pretrained):
    """`asap play --delta` steps the rollout through the aligned simulator: a large ankle Δa changes the rollout."""
    from asap.cli import main

    d, ck = pretrained
    delta = constant_delta(tmp_path / "delta.pt", 3.0)
    plain, shifted = tmp_path / "plain.json", tmp_path / "delta.json"
    base = ["play", str(ck), "--motion", str(d / "clip.npz"), "--no-video"]
    main([*base, "--out", str(tmp_path / "p"), "--json", str(plain)])
    main([*base, "--out", str(tmp_path / "d"), "--json", str(shifted), "--delta", str(delta)])
    a, b = json.loads(plain.read_text()), json.loads(shifted.read_text())
    assert b["E_mpjpe_mm"] != pytest.approx(a["E_mpjpe_mm"], rel=1e-3)


def test_oracle_delta_spec(tmp_path):
    """`oracle:<gap>` names the closed-form oracle wherever a delta model is taken (finetune, play --delta)."""
    from asap.delta.oracle import OracleDelta, load_delta

    m = load_delta("oracle:configs/real_gap/ankle_weak.yaml")
    assert isinstance(m, OracleDelta) and m.gap_name == "ankle_weak"
    assert isinstance(load_delta(str(constant_delta(tmp_path / "d.pt", 0.1))), DeltaModel)
    with pytest.raises(FileNotFoundError, match="train-delta"):
        load_delta(str(tmp_path / "missing.pt"))


def test_cli_options_reach_the_configs():
    """`asap train-delta` / `asap finetune` options become the config fields they name."""
    from asap.cli import build_parser
    from asap.delta.commands import _overrides
    from asap.delta.config import DeltaTrainConfig

    a = build_parser().parse_args(["train-delta", "--motions", "a", "b", "--out", "o", "--gap", "g.yaml", "seed=3"])
    cfg = load_config(DeltaTrainConfig, None, _overrides(a, {"motions": "motions", "out": "run.out_dir", "gap": "gap"}))
    assert (cfg.motions, cfg.run.out_dir, cfg.gap, cfg.seed) == (["a", "b"], "o", "g.yaml", 3)
    a = build_parser().parse_args(["finetune", "--checkpoint", "c.pt", "--delta", "oracle:g.yaml", "--out", "o"])
    options = {"checkpoint": "checkpoint", "delta": "delta", "out": "out_dir"}
    cfg = load_config(FinetuneConfig, None, _overrides(a, options))
    assert (cfg.checkpoint, cfg.delta, cfg.out_dir) == ("c.pt", "oracle:g.yaml", "o")


def test_finetune_averages_the_last_checkpoints(tmp_path, pretrained):
    """run.average_last=3: the final checkpoint (and the evaluated, exported policy) holds the mean of the last
    iterate and the two checkpoints before it, of this run only; the last iterate is kept beside it."""
    d, ck = pretrained
    delta = constant_delta(tmp_path / "delta.pt", 0.4)
    out = tmp_path / "ft"
    overrides = [f"checkpoint={ck}", f"delta={delta}", f"out_dir={out}", "max_iterations=4", "eval_interval=0",
                 "pretrain.run.save_interval=1", "pretrain.run.average_last=3"]  # fmt: skip
    cfg = load_config(FinetuneConfig, None, overrides)
    r = finetune(cfg)
    first = int(torch.load(ck, weights_only=False)["iter"]) + 1  # the fine-tuning run's first iteration
    last = first + 3
    names = [f"model_{first + 1}.pt", f"model_{first + 2}.pt", f"model_{last}_iterate.pt"]
    assert [p.rsplit("/", 1)[-1] for p in r["averaged_checkpoints"]] == names
    parts = [torch.load(out / n, weights_only=False)["actor_state_dict"] for n in names]
    final = torch.load(out / f"model_{last}.pt", weights_only=False)["actor_state_dict"]
    w = "mlp.0.weight"
    assert not torch.equal(parts[0][w], parts[2][w])  # training moved the weights between checkpoints
    assert torch.allclose(final[w], (parts[0][w] + parts[1][w] + parts[2][w]) / 3, atol=1e-6)
    var = "obs_normalizer._var"
    if var in final:
        assert torch.allclose(final["obs_normalizer._std"], final[var].sqrt())
    assert r["checkpoint"] == str(out / f"model_{last}.pt")


def test_finetune_starts_from_the_given_action_std(tmp_path, pretrained):
    d, ck = pretrained
    pre = torch.load(ck, map_location="cpu", weights_only=False)["actor_state_dict"]["distribution.std_param"]
    delta = constant_delta(tmp_path / "delta.pt", 0.1)
    cfg = load_config(FinetuneConfig, None, [f"checkpoint={ck}", f"delta={delta}", f"out_dir={tmp_path / 'ft'}",
                                              "max_iterations=1", "eval_interval=0", "action_std=0.2",
                                              "pretrain.ppo.entropy_coef=0"])  # fmt: skip
    r = finetune(cfg)
    std = torch.load(r["checkpoint"], map_location="cpu", weights_only=False)["actor_state_dict"]
    assert pre.mean() > 0.4 and std["distribution.std_param"].sub(0.2).abs().max() < 0.01
