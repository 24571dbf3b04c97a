"""`openloop_eval` (``asap eval --open-loop``): the open-loop table from log files, written as metrics.json, report.md
and a plot; the Oracle row when a gap is known (given or recorded by the logs); extra named rows (baselines)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from test_delta_env import make_gapped_log

from asap.eval.openloop import METRIC_KEYS, openloop_eval, replay
from asap.motion.motion import Motion
from asap.sim.base import DynamicsParams, SimConfig, make_simulator

GAP = "configs/real_gap/ankle_weak.yaml"
FAST = dict(horizons=(0.25, 0.5), stride_s=0.2, threads=1)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    d = tmp_path_factory.mktemp("logs")
    for i in range(2):
        make_gapped_log(steps=40, seed=i).save(d / f"ep{i}.npz")
    return d


def _sysid_row(lib, make_sim, shaping, horizon_s, stride_s):
    """A baseline row of its own (a ReplayFn): replay in the simulator with the logs' own gap, what a perfect
    system identification would give."""
    return replay(lib, _known_gap_sim, shaping, horizon_s, stride_s)


def _known_gap_sim(n: int):
    """The simulator with the logs' own gap: what a perfect system identification would give."""
    sim = make_simulator(SimConfig(num_envs=n, threads=1))
    k = torch.ones(n, sim.num_joints)
    k[:, [i for i, name in enumerate(sim.spec.joint_names) if "ankle" in name]] = 0.65
    sim.set_dynamics(None, DynamicsParams(kp_scale=k))
    return sim


def test_openloop_eval_writes_the_table_with_oracle_and_extra_rows(logs, tmp_path):
    r = openloop_eval([str(logs)], tmp_path / "eval", gap=GAP, methods={"SysID": _sysid_row}, **FAST)
    out = tmp_path / "eval"
    table = json.loads((out / "metrics.json").read_text())
    assert table == r["metrics"] and set(table) == {"0.25", "0.5"}
    assert list(table["0.5"]) == ["OpenLoop", "Oracle", "SysID"]
    assert set(table["0.5"]["Oracle"]) == set(METRIC_KEYS)
    row = table["0.5"]
    assert row["Oracle"]["E_g_mpjpe"] < 0.5 * row["OpenLoop"]["E_g_mpjpe"]
    assert row["SysID"]["E_g_mpjpe"] < 0.1 * row["OpenLoop"]["E_g_mpjpe"]  # the logs' own simulator: near exact
    md = (out / "report.md").read_text()
    assert md.count("| 0.5 |") == 3 and "on 2 episode(s)" in md
    assert (out / "openloop.png").stat().st_size > 1000
    assert r["episodes"] == 2 and r["gap"] == GAP


def test_openloop_eval_rows_follow_what_is_known(logs, tmp_path):
    plain = openloop_eval([str(logs)], tmp_path / "plain", horizons=(0.25,), stride_s=0.4, threads=1)
    assert list(plain["metrics"]["0.25"]) == ["OpenLoop"] and plain["gap"] is None
    # a delta spec of the oracle is the Oracle row (not labelled ASAP), with the same numbers as the gap's oracle
    both = openloop_eval([str(logs)], tmp_path / "d", delta=f"oracle:{GAP}", horizons=(0.25,), stride_s=0.4,
                         threads=1)  # fmt: skip
    assert list(both["metrics"]["0.25"]) == ["OpenLoop", "Oracle"]
    # logs that record their gap (virtual G1) get the Oracle row without --gap
    tagged = tmp_path / "tagged"
    for f in sorted(logs.glob("*.npz")):
        m = Motion.load(f)
        replace(m, meta={**m.meta, "gap": GAP}).save(tagged / f.name)
    rec = openloop_eval([str(tagged)], tmp_path / "rec", horizons=(0.25,), stride_s=0.4, threads=1)
    assert rec["gap"] == GAP
    assert rec["metrics"]["0.25"]["Oracle"] == pytest.approx(both["metrics"]["0.25"]["Oracle"])
    with pytest.raises(ValueError, match="given twice"):
        openloop_eval([str(logs)], tmp_path / "x", methods={"OpenLoop": replay}, horizons=(0.25,), threads=1)


def test_cli_open_loop_adds_the_sysid_row_from_a_dynamics_file(tmp_path, capsys):
    """`asap eval --open-loop LOGS --sysid DIR`: a dynamics.yaml of the logs' exact gap replays them near exactly."""
    from asap.cli import main
    from asap.sim.dynamics import SimDynamics, save_dynamics

    logs = tmp_path / "logs"
    make_gapped_log(steps=56, seed=3).save(logs / "ep.npz")  # > 1.0 s: every default horizon has a window
    save_dynamics(SimDynamics(kp_scale={"ankle": 0.65}), tmp_path / "sysid" / "dynamics.yaml")
    out = tmp_path / "cli"
    assert main(["eval", "--open-loop", str(logs), "--sysid", str(tmp_path / "sysid"), "--out", str(out)]) == 0
    table = json.loads((out / "metrics.json").read_text())
    assert list(table["1"]) == ["OpenLoop", "SysID"]
    printed = capsys.readouterr().out  # the table's summary, as `asap train-delta` prints it, with its window count
    assert f"open loop 1 s, E_g-mpjpe (mm): OpenLoop {table['1']['OpenLoop']['E_g_mpjpe']:.1f}, SysID" in printed
    assert "(1 window(s))" in printed
    for h in table.values():
        assert h["SysID"]["E_g_mpjpe"] < 0.1 * h["OpenLoop"]["E_g_mpjpe"]
    assert main(["eval", "--open-loop", str(logs), "--sysid", str(tmp_path / "nothing"), "--out", str(out)]) != 0
    assert "asap sysid" in capsys.readouterr().err
