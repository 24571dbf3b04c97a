"""`asap sysid` on tiny logs made by a simulator with a KNOWN ankle Kp scale (0.65): CMA-ES recovers it and its row
beats OpenLoop, the grid option runs, dynamics.yaml loads back into a simulator, a killed run resumes, and
`asap finetune` trains in identified dynamics or with domain randomisation alone."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from test_delta_env import make_gapped_log
from test_finetune import TINY, pretrained  # noqa: F401  (the tiny pretraining fixture)

from asap.config import load_config
from asap.delta.finetune import FinetuneConfig, finetune
from asap.delta.sysid import STATE_FILE, SearchSpace, SysIDConfig, sysid
from asap.sim.base import DYNAMICS_BODIES, SimConfig, make_simulator
from asap.sim.dynamics import SimDynamics, apply_dynamics, load_dynamics, overwritten, save_dynamics

GAP = "configs/real_gap/ankle_weak.yaml"
FAST = ["horizon_s=0.5", "stride_s=0.5", "threads=1", "horizons_s=[0.5]", "report_stride_s=0.25"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Four 1.2 s episodes of a Kp x0.65-ankle simulator (3 for training, 1 held out)."""
    d = tmp_path_factory.mktemp("sysid_logs")
    for i in range(4):
        make_gapped_log(steps=60, seed=i).save(d / f"ep{i}.npz")
    return d


def _cfg(logs, out, *overrides: str) -> SysIDConfig:
    return load_config(SysIDConfig, None, [f"motions=[{logs}]", f"out_dir={out}", *FAST, *overrides])


def test_cma_recovers_the_ankle_kp_scale_and_beats_openloop(logs, tmp_path):
    out = tmp_path / "cma"
    s = sysid(_cfg(logs, out, "params=[kp_scale.ankles,kp_scale.knees]", "population=6", "generations=6",
                   f"gap={GAP}"))  # fmt: skip
    assert s["values"]["kp_scale.ankles"] == pytest.approx(0.65, abs=0.08)
    assert s["values"]["kp_scale.knees"] == pytest.approx(1.0, abs=0.15)
    assert s["train"]["best"]["loss"] < 0.3 * s["train"]["nominal"]["loss"]
    row = json.loads((out / "openloop.json").read_text())["0.5"]
    assert list(row) == ["OpenLoop", "Oracle", "SysID"]
    assert row["SysID"]["E_g_mpjpe"] < 0.3 * row["OpenLoop"]["E_g_mpjpe"]
    assert s["episodes"] == {"train": 3, "held_out": 1} and len(s["history"]) == s["generations"] == 6
    for name in ("dynamics.yaml", "openloop.md", "openloop.png", "sysid.json", "split.json", STATE_FILE):
        assert (out / name).is_file(), name
    # dynamics.yaml loads back and puts the identified Kp scale on the ankle joints (only there)
    dyn = load_dynamics(out / "dynamics.yaml")
    assert dyn.kp_scale["ankle"] == pytest.approx(s["values"]["kp_scale.ankles"])
    sim = apply_dynamics(make_simulator(SimConfig(num_envs=2, threads=1)), dyn)
    kp = sim.get_dynamics().kp_scale
    ankles = torch.tensor(["ankle" in n for n in sim.spec.joint_names])
    assert torch.allclose(kp[:, ankles], torch.tensor(dyn.kp_scale["ankle"]))
    hips = torch.tensor(["hip" in n for n in sim.spec.joint_names])
    assert torch.allclose(kp[:, hips], torch.tensor(1.0))
    sim.close()


def test_grid_scores_every_combination_and_finds_the_logged_scale(logs, tmp_path):
    s = sysid(_cfg(logs, tmp_path / "grid", "method=grid", "params=[kp_scale.ankles,base_mass]",
                   "grid={kp_scale.ankles: [0.5, 0.65, 1.0]}", "grid_points=2", "ranges.base_mass=[0.0,1.0]",
                   "population=4"))  # fmt: skip
    assert s["candidates"] == 6 and s["generations"] == 2  # 3 x 2 combinations, 4 per batched replay
    assert s["values"] == {"kp_scale.ankles": 0.65, "base_mass": 0.0}
    assert s["train"]["best"]["E_g_mpjpe"] < 0.1 * s["train"]["nominal"]["E_g_mpjpe"]


def test_grid_identifies_a_command_latency_below_one_control_step(tmp_path):
    """Logs of a simulator whose commands act 2 physics substeps (10 ms) late: the grid over substep_delay finds 2."""
    d = tmp_path / "late_logs"
    d.mkdir()
    for i in range(4):
        make_gapped_log(steps=60, seed=i, substep_delay=2).save(d / f"ep{i}.npz")
    s = sysid(_cfg(d, tmp_path / "latency", "method=grid", "params=[kp_scale.ankles,substep_delay]",
                   "grid={kp_scale.ankles: [0.65]}", "grid_points=4", "population=4"))  # fmt: skip
    assert s["candidates"] == 4  # substep_delay 0, 1, 2, 3
    assert s["values"] == {"kp_scale.ankles": 0.65, "substep_delay": 2.0}
    assert load_dynamics(tmp_path / "latency" / "dynamics.yaml").substep_delay == 2
    with pytest.raises(ValueError, match="substep_delay"):
        SearchSpace.of(_cfg(d, tmp_path, "params=[substep_delay]", "ranges.substep_delay=[0,4]"))


def test_resume_continues_from_the_saved_generation(logs, tmp_path):
    out = tmp_path / "resume"
    args = ("params=[kp_scale.ankles,kd_scale.ankles]", "population=3")
    first = sysid(_cfg(logs, out, *args, "generations=1"))
    with open(out / STATE_FILE, "rb") as f:
        saved = pickle.load(f)
    assert saved["generation"] == 1 and len(saved["evaluated"]) == 3
    second = sysid(_cfg(logs, out, *args, "generations=2"))
    assert second["generations"] == 2 and second["candidates"] == 6
    assert second["history"][0] == first["history"][0]  # generation 0 was not re-run
    with pytest.raises(ValueError, match="other sysid settings"):
        sysid(_cfg(logs, out, "params=[kp_scale.knees,kd_scale.ankles]", "population=3", "generations=3"))


def test_search_space_refuses_bad_parameters(logs, tmp_path):
    def space(*overrides: str) -> SearchSpace:
        return SearchSpace.of(_cfg(logs, tmp_path, *overrides))

    s = space("params=[kp_scale.arms,base_com.y,action_delay]")
    v = s.from_unit([1.0, 0.5, 0.7])
    assert v == pytest.approx({"kp_scale.arms": 1.5, "base_com.y": 0.0, "action_delay": 1.0})
    d = s.dynamics(v)
    assert list(d.kp_scale) == ["shoulder", "elbow"]  # 'wrist' matches no joint of g1_23dof: left out
    assert list(d.com_offset) == ["torso_link"] and d.action_delay == 1
    for bad, msg in ((["params=[kp_scale.toes]"], "unknown joint group"), (["params=[base_com.w]"], "base_com"),
                     (["params=[gravity]"], "unknown parameter"), (["ranges.action_delay=[0,9]"], "action_delay"),
                     (["params=[base_mass]", "ranges.base_mass=[1,1]"], "low < high"),
                     (["groups.toes=[toe]"], "toes")):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            space(*bad)
    with pytest.raises(ValueError, match="method"):
        sysid(_cfg(logs, tmp_path, "method=bayes"))


def test_dynamics_file_round_trip_and_fields(tmp_path):
    dyn = SimDynamics(kp_scale={"ankle": 0.7}, joint_frictionloss={"knee": 0.3}, mass_add={"torso_link": 1.5},
                      com_offset={"torso_link": [0.01, 0.0, -0.02]}, friction=0.8, action_delay=1)  # fmt: skip
    back = load_dynamics(save_dynamics(dyn, tmp_path / "d.yaml"))
    assert back == dyn
    sim = make_simulator(SimConfig(num_envs=3, threads=1))
    nominal = sim.get_dynamics()
    apply_dynamics(sim, back, torch.tensor([1]))  # one env only
    now = sim.get_dynamics()
    knees = [i for i, n in enumerate(sim.spec.joint_names) if "knee" in n]
    torso = DYNAMICS_BODIES.index("torso_link")
    assert torch.allclose(now.joint_frictionloss[1, knees], torch.tensor(0.3))
    assert torch.allclose(now.joint_armature[1], nominal.joint_armature[1])  # not listed: nominal
    assert now.mass_add[1, torso] == pytest.approx(1.5) and now.com_offset[1, torso, 2] == pytest.approx(-0.02)
    assert int(now.action_delay[1]) == 1 and int(now.action_delay[0]) == 0 and now.friction[1] == pytest.approx(0.8)
    assert torch.equal(now.kp_scale[0], nominal.kp_scale[0])
    assert overwritten(sim, back) != []  # envs 0 and 2 do not have it
    apply_dynamics(sim, back)
    assert overwritten(sim, back) == []
    with pytest.raises(ValueError, match="unknown link"):
        SimDynamics(mass_add={"tail": 1.0}).params(sim)
    sim.close()
    with pytest.raises(FileNotFoundError, match="asap sysid"):
        load_dynamics(tmp_path / "missing.yaml")


def test_finetune_in_identified_dynamics_runs(tmp_path, pretrained):  # noqa: F811
    d, ck = pretrained
    path = save_dynamics(SimDynamics(name="sysid", kp_scale={"ankle": 0.65}), tmp_path / "dynamics.yaml")
    out = tmp_path / "ft"
    cfg = load_config(FinetuneConfig, None, [f"checkpoint={ck}", f"dynamics={path}", f"out_dir={out}",
                                              "max_iterations=2", "eval_interval=0"])  # fmt: skip
    r = finetune(cfg)  # raises unless every env of the training simulator holds the file's Kp scale
    assert (out / "policy.onnx").exists() and r["iterations"] >= 1 and "delta_mean_abs" not in r
    assert json.loads((out / "metrics.json").read_text())["dynamics"] == str(path)
    # domain randomisation of the same field would rewrite the identified Kp at every reset: refused
    bad = load_config(FinetuneConfig, None, [f"checkpoint={ck}", f"dynamics={path}", f"out_dir={tmp_path / 'b'}",
                                              "max_iterations=1", "pretrain.env.domain_rand.kp_kd=true"])  # fmt: skip
    with pytest.raises(ValueError, match="kp_scale"):
        finetune(bad)


def test_finetune_with_domain_randomisation_alone(tmp_path, pretrained):  # noqa: F811
    d, ck = pretrained
    out = tmp_path / "dr"
    cfg = load_config(FinetuneConfig, "configs/finetune/dr.yaml", [f"checkpoint={ck}", f"out_dir={out}",
                      "max_iterations=2", "eval_interval=0", "max_time_s=0"])  # fmt: skip
    assert cfg.pretrain["env"]["domain_rand"]["control_delay_range"] == [0, 2]
    r = finetune(cfg)
    assert (out / "policy.onnx").exists() and r["iterations"] >= 1
    none = load_config(FinetuneConfig, None, [f"checkpoint={ck}", f"out_dir={tmp_path / 'n'}"])
    with pytest.raises(ValueError, match="nothing to fine-tune against"):
        finetune(none)


def test_cli_registers_sysid_and_finetune_dynamics():
    from asap.cli import build_parser
    from asap.delta.commands import _overrides

    a = build_parser().parse_args(["sysid", "--motions", "a", "--out", "o", "--method", "grid", "population=4"])
    cfg = load_config(SysIDConfig, "configs/sysid/default.yaml",
                      _overrides(a, {"motions": "motions", "out": "out_dir", "method": "method"}))  # fmt: skip
    assert (cfg.motions, cfg.out_dir, cfg.method, cfg.population) == (["a"], "o", "grid", 4)
    assert SearchSpace.of(cfg).names == tuple(cfg.params)  # the shipped defaults are valid
    grid = load_config(SysIDConfig, "configs/sysid/grid.yaml")
    assert len(SearchSpace.of(grid).grid(grid)) == 81  # the paper's grid: CoM x mass x legs' Kp x Kd
    a = build_parser().parse_args(["finetune", "--checkpoint", "c.pt", "--dynamics", "run/sysid/dynamics.yaml"])
    f = load_config(FinetuneConfig, None, _overrides(a, {"checkpoint": "checkpoint", "dynamics": "dynamics"}))
    assert (f.checkpoint, f.dynamics, f.delta) == ("c.pt", "run/sysid/dynamics.yaml", "")
