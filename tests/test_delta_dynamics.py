"""The DeltaDynamics baseline: the residual algebra, the K-step loss (every step counts), the simulator wrapper's
exact write-back, training on a log with a known ankle Kp gap (beats OpenLoop on its windows), resume, the report
row, and `asap finetune --dynamics-model`."""

from __future__ import annotations

import json

import pytest
import torch
from test_delta_env import SHAPING, make_gapped_log

from asap.config import load_config
from asap.delta.delta_dynamics import (
    DeltaDynamicsMeta,
    DeltaDynamicsModel,
    DeltaDynamicsSimulator,
    apply_residual,
    feature_dim,
    read_state_vector,
    residual_dim,
    rollout_loss,
    state_difference,
    state_dim,
)
from asap.delta.delta_dynamics_train import DeltaDynamicsConfig, DeltaDynamicsTrainer, stage_horizon, train_dynamics
from asap.eval.openloop import replay
from asap.motion.motionlib import MotionLib
from asap.sim.base import SimConfig, make_simulator
from asap.utils.rotations import quat_normalize

J = 23
TINY = ["num_envs=16", "min_steps=32", "threads=1", "hidden_dims=[64,64]", "epochs=2", "mini_batches=2",
        "progress=false", "curriculum=[1,2,4]", "stage_iterations=[4]", "max_time_s=0", "horizons_s=[0.2]",
        "report_stride_s=0.2", "held_out=0"]  # fmt: skip


def _random_states(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = 0.3 * torch.randn(n, state_dim(J), generator=g, dtype=torch.float64)
    s[:, 3:7] = quat_normalize(torch.tensor([1.0, 0, 0, 0], dtype=torch.float64) + s[:, 3:7])
    return s


def constant_model(value: float | torch.Tensor) -> DeltaDynamicsModel:
    """A model whose residual is ``value`` (a scalar or (12 + 2J,)) whatever its input (unbounded)."""
    model = DeltaDynamicsModel(DeltaDynamicsMeta("g1_23dof", (8,), bound=0.0))
    with torch.no_grad():
        model.mlp[-1].bias.copy_(torch.as_tensor(value, dtype=torch.float32).expand(residual_dim(J)))
    return model.eval().requires_grad_(False)


def test_residual_round_trip_and_heading_invariance():
    """``state_difference`` inverts ``apply_residual`` both ways, and a residual means the same motion whichever way
    the robot faces (root terms in the heading frame)."""
    base, target = _random_states(6, 0), _random_states(6, 1)
    r = state_difference(target, base, J)
    back = apply_residual(base, r, J)
    sign = torch.sign((back[:, 3:7] * target[:, 3:7]).sum(-1, keepdim=True))
    back[:, 3:7] *= sign
    assert torch.allclose(back, target, atol=1e-12)
    r2 = 0.1 * torch.randn(6, residual_dim(J), dtype=torch.float64)
    assert torch.allclose(state_difference(apply_residual(base, r2, J), base, J), r2, atol=1e-12)

    yaw = torch.tensor([0.9238795325, 0, 0, 0.3826834324], dtype=torch.float64)  # 45 degrees about z
    from asap.utils.rotations import quat_mul, quat_rotate

    def turned(s: torch.Tensor) -> torch.Tensor:
        s = s.clone()
        for a in (0, 7, 10):
            s[:, a : a + 3] = quat_rotate(yaw.expand(6, 4), s[:, a : a + 3])
        s[:, 3:7] = quat_mul(yaw.expand(6, 4), s[:, 3:7])
        return s

    assert torch.allclose(state_difference(turned(target), turned(base), J), r, atol=1e-9)


def test_rollout_loss_counts_every_step():
    """The loss accumulates all K steps: changing only the first step's prediction changes it (the reference's
    loss kept only the last step), by that step's share 1/K of the per-step mean squared error."""
    k, b = 4, 3
    logged = torch.stack([_random_states(b, s) for s in range(k)]).float()
    corrected = logged.clone()
    scale = torch.ones(residual_dim(J))
    assert float(rollout_loss(corrected, logged, scale, J)) == pytest.approx(0.0, abs=1e-10)
    shifted = corrected.clone()
    shifted[0, :, 13] += 0.5  # first joint of step 0 only
    loss = float(rollout_loss(shifted, logged, scale, J))
    assert loss == pytest.approx(0.25 / (k * residual_dim(J)), rel=1e-5)
    last = corrected.clone()
    last[-1, :, 13] += 0.5
    assert float(rollout_loss(last, logged, scale, J)) == pytest.approx(loss, rel=1e-5)  # every step weighs alike
    # the gradient reaches every step's prediction
    pred = torch.zeros(k, b, residual_dim(J), requires_grad=True)
    base = logged + 0.01
    rollout_loss(apply_residual(base, pred, J), logged, scale, J).backward()
    assert all(float(pred.grad[i].abs().sum()) > 0 for i in range(k))


def test_zero_model_leaves_the_simulator_bit_for_bit_unchanged():
    plain = make_simulator(SimConfig(num_envs=2, threads=1))
    wrapped = DeltaDynamicsSimulator(make_simulator(SimConfig(num_envs=2, threads=1)), constant_model(0.0))
    targets = torch.as_tensor(plain.spec.default_pos, dtype=torch.float32).repeat(2, 1)
    targets[:, 4] += 0.3
    for _ in range(5):
        plain.step(targets=targets)
        wrapped.step(targets=targets)
    assert torch.equal(read_state_vector(plain), read_state_vector(wrapped))
    assert torch.equal(plain.get_applied_torques(), wrapped.get_applied_torques())
    assert torch.equal(plain.get_body_state().pos, wrapped.get_body_state().pos)
    plain.close()
    wrapped.close()


def test_constant_residual_shifts_the_state_by_exactly_that():
    r = torch.zeros(residual_dim(J))
    r[0:3] = torch.tensor([0.01, -0.02, 0.005])  # heading frame position
    r[12:35] = 0.01  # joint positions
    r[35:58] = -0.2  # joint velocities
    plain = make_simulator(SimConfig(num_envs=2, threads=1))
    wrapped = DeltaDynamicsSimulator(make_simulator(SimConfig(num_envs=2, threads=1)), constant_model(r))
    targets = torch.as_tensor(plain.spec.default_pos, dtype=torch.float32).repeat(2, 1)
    plain.step(targets=targets)
    tau = plain.get_applied_torques()
    wrapped.step(targets=targets)
    expected = apply_residual(read_state_vector(plain), r.expand(2, -1), J)
    got = read_state_vector(wrapped)
    assert torch.equal(got[:, 13:], expected[:, 13:])  # joints: exactly the shift
    assert torch.allclose(got[:, :13], expected[:, :13], atol=1e-6)  # root: through the simulator's float64 state
    assert torch.allclose(got[:, 0:3] - read_state_vector(plain)[:, 0:3], r[0:3].expand(2, 3), atol=1e-5)  # yaw ~0
    assert torch.equal(wrapped.get_applied_torques(), tau)  # the step's readouts survive the write
    wrapped.reset()
    assert torch.equal(wrapped.get_applied_torques(), torch.zeros_like(tau))
    plain.close()
    wrapped.close()


def test_residual_is_bounded_per_step():
    """The output is at most ``bound`` one-step spreads per step, whatever the input."""
    model = DeltaDynamicsModel(DeltaDynamicsMeta("g1_23dof", (8,), bound=3.0))
    scale = torch.linspace(0.01, 1.0, residual_dim(J))
    model.set_normalisation(torch.zeros(feature_dim(J)), torch.ones(feature_dim(J)), scale)
    with torch.no_grad():
        model.mlp[-1].bias.fill_(1e4)
    r = model(torch.randn(4, feature_dim(J)))
    assert torch.allclose(r, 3.0 * scale.expand(4, -1))


def test_stage_horizon_follows_the_curriculum():
    cfg = DeltaDynamicsConfig(curriculum=[1, 2, 4, 8], stage_iterations=[3])
    assert [stage_horizon(cfg, i) for i in (0, 2, 3, 6, 9, 100)] == [1, 1, 2, 4, 8, 8]
    cfg = DeltaDynamicsConfig(curriculum=[1, 2, 4], stage_iterations=[5, 1])
    assert [stage_horizon(cfg, i) for i in (0, 4, 5, 6, 7, 100)] == [1, 1, 2, 4, 4, 4]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    d = tmp_path_factory.mktemp("dyn_logs")
    for i in range(2):
        make_gapped_log(steps=45, seed=i).save(d / f"ep{i}.npz")
    return d


def _window_error(files, model, horizon_s: float = 0.2) -> float:
    from asap.delta.logs import load_logs

    motions, _ = load_logs(files)
    lib = MotionLib(motions)

    def make_sim(n):
        sim = make_simulator(SimConfig(num_envs=n, threads=1))
        return sim if model is None else DeltaDynamicsSimulator(sim, model)

    return replay(lib, make_sim, SHAPING, horizon_s, 0.1)["metrics"]["E_g_mpjpe"]


def test_training_beats_openloop_on_its_windows_and_resumes(logs, tmp_path):
    """A short training on logs of a Kp x0.65-ankle simulator lowers the multi-step replay error of the training
    windows below the plain simulator's; the report has the DeltaDynamics row; a resumed run continues the count."""
    out = tmp_path / "dyn"
    cfg = load_config(DeltaDynamicsConfig, None, [f"motions=[{logs}]", f"out_dir={out}", "max_iterations=12",
                                                  "gap=configs/real_gap/ankle_weak.yaml", *TINY])  # fmt: skip
    s = train_dynamics(cfg)
    assert s["iterations"] == 12 and s["final_K"] == 4
    model = DeltaDynamicsModel.load(out / "dynamics_model.pt")
    meta = json.loads((out / "dynamics_model.json").read_text())
    assert meta["state_layout"]["residual"]["dof_vel"] == [35, 58] and len(meta["normalisation"]["in_mean"]) == (
        feature_dim(J)
    )
    files = sorted(logs.glob("*.npz"))
    plain, learned = _window_error(files, None), _window_error(files, model)
    assert learned < 0.8 * plain, (learned, plain)
    rep = json.loads((out / "openloop.json").read_text())
    assert list(rep["0.2"]) == ["OpenLoop", "Oracle", "DeltaDynamics"]
    assert rep["0.2"]["DeltaDynamics"]["E_g_mpjpe"] < rep["0.2"]["OpenLoop"]["E_g_mpjpe"]
    assert "DeltaDynamics" in (out / "openloop.md").read_text()

    more = load_config(DeltaDynamicsConfig, None, [f"motions=[{logs}]", f"out_dir={out}", "max_iterations=2",
                                                   f"resume={out / 'model_12.pt'}", *TINY])  # fmt: skip
    tr = DeltaDynamicsTrainer(more)
    try:
        assert torch.equal(tr.model.out_scale, model.out_scale)  # the normalisation comes from the checkpoint
        ck = tr.train()
    finally:
        tr.close()
    assert ck.name == "model_14.pt" and [h["iteration"] for h in tr.history][-3:] == [11, 12, 13]


def test_finetune_with_the_dynamics_model(tmp_path):
    """`asap finetune --dynamics-model` runs PPO in the simulator corrected by the model (2 iterations)."""
    from test_finetune import TINY as FT_TINY

    from asap.delta.finetune import FinetuneConfig, finetune
    from asap.motion.synthetic import synthetic_motion
    from asap.rl.config import PretrainConfig
    from asap.rl.runner import pretrain

    clip = tmp_path / "clip.npz"
    synthetic_motion(num_frames=16, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05).save(clip)
    pre = load_config(PretrainConfig, None, [f"motion={clip}", f"run.out_dir={tmp_path / 'pre'}",
                                             "run.max_iterations=2", *FT_TINY])  # fmt: skip
    ck = pretrain(pre)["checkpoint"]
    r = torch.zeros(residual_dim(J))
    r[12:35] = 0.002
    path = constant_model(r).save(tmp_path / "dynamics_model.pt")
    out = tmp_path / "ft"
    cfg = load_config(FinetuneConfig, None, [f"checkpoint={ck}", f"dynamics_model={path}", f"out_dir={out}",
                                             "max_iterations=2", "eval_interval=0"])  # fmt: skip
    res = finetune(cfg)
    assert (out / "policy.onnx").exists() and res["iterations"] >= 1
    assert res["dynamics_mean_abs"]["dof_pos"] == pytest.approx(0.002, rel=1e-4)


def test_cli_options_reach_the_configs():
    """`asap train-dynamics` options and `asap finetune --dynamics-model` become the config fields they name."""
    from asap.cli import build_parser
    from asap.delta.commands import _overrides
    from asap.delta.finetune import FinetuneConfig

    a = build_parser().parse_args(["train-dynamics", "--motions", "a", "b", "--out", "o", "--resume", "r.pt",
                                   "--config", "configs/dynamics/default.yaml", "seed=3"])  # fmt: skip
    options = {"motions": "motions", "out": "out_dir", "resume": "resume", "gap": "gap"}
    cfg = load_config(DeltaDynamicsConfig, a.config, _overrides(a, options))
    assert (cfg.motions, cfg.out_dir, cfg.resume, cfg.seed, cfg.curriculum[-1]) == (["a", "b"], "o", "r.pt", 3, 50)
    a = build_parser().parse_args(["finetune", "--checkpoint", "c.pt", "--dynamics-model", "d.pt"])
    options = {"checkpoint": "checkpoint", "dynamics_model": "dynamics_model"}
    assert load_config(FinetuneConfig, None, _overrides(a, options)).dynamics_model == "d.pt"
