"""`asap log show` and `asap log export` (deploy/log_commands.py) on a log made by tests/test_mocap_attach.py's
simulated G1: two episodes, the second ends in a fall (damping), logged without mocap."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")

from test_mocap_attach import make_sim_log, mocap_samples, write_export  # noqa: E402 - after the skip


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("logcmd")
    gt = make_sim_log(d / "log", seed=2, episodes=2, fault_at=1.5)
    return d / "log", gt


def test_show_lists_episodes_and_writes_plots(log_dir: tuple[Path, dict], tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from PIL import Image

    from asap.cli import main
    from deploy.logger import read_log

    log = shutil.copytree(log_dir[0], tmp_path / "log")
    assert main(["log", "show", str(log), "--out", str(tmp_path / "png"), "--json"]) == 0
    eps = json.loads(capsys.readouterr().out)
    assert [e["episode"] for e in eps] == [0, 1]
    a, b = eps
    # the episodes cut the log into consecutive pieces: the way back after a run is that episode's, the hold before
    # the next run the next one's, and a fall belongs to the episode that fell
    assert a["modes"] == ["HOLD", "RUN", "RAMP"] and a["faults"] == [] and a["completed"]
    assert a["policy_steps"] == 200 and a["run_s"] == pytest.approx(4.0)
    assert b["modes"] == ["HOLD", "RUN", "DAMPING"] and not b["completed"]
    assert len(b["faults"]) == 1 and "fall: tilt" in b["faults"][0] and b["policy_steps"] == 75
    steps = read_log(log)["steps"]
    assert a["duration_s"] + b["duration_s"] == pytest.approx(len(steps["mode"]) * 0.02, abs=1e-6)
    # no mocap: the conversion estimates the root from the IMU and leg kinematics
    assert {e["root_source"] for e in eps} == {"estimate"} and a["root_coverage"] == 0.0
    for e in eps:
        assert [Path(p).name for p in e["plots"]] == [f"ep{e['episode']:03d}_{k}.png" for k in
                                                      ("joints", "torques", "root")]  # fmt: skip
        for p in e["plots"]:
            with Image.open(p) as im:
                assert im.size[0] > 400 and im.size[1] > 200
    # the human-readable listing names the fault; after attaching mocap the first episode's root is mocap
    write_export(tmp_path / "m.csv", "plain", mocap_samples(log_dir[1]))
    assert main(["log", "attach-mocap", str(log), str(tmp_path / "m.csv"), "--format", "plain"]) == 0
    assert main(["log", "show", str(log), "--no-plots"]) == 0
    out = capsys.readouterr().out
    offset = float(re.search(r"offset ([+-][0-9.]+) s", out).group(1))
    assert abs(offset - 0.37) <= 0.005 and "fall: tilt 61 deg" in out and "root mocap (100 % of steps)" in out
    assert "mocap m.csv (plain): offset +0.3" in out


def test_export_writes_what_collect_writes(log_dir: tuple[Path, dict], tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """`asap log export` = the conversion `asap collect` runs at its end (the same function), with episodes
    selectable."""
    import deploy.collect
    from asap.cli import main
    from asap.motion import load_motion
    from deploy.log_commands import export_motions
    from deploy.logger import log_to_motions

    assert deploy.collect.export_motions is export_motions
    log = log_dir[0]
    assert main(["log", "export", str(log), "--out", str(tmp_path / "all")]) == 0
    ref = log_to_motions(log)
    files = sorted((tmp_path / "all").glob("*.npz"))
    assert [f.name for f in files] == ["sway_ep000.npz", "sway_ep001.npz"]
    for f, m in zip(files, ref, strict=True):
        got = load_motion(f)
        for k in ("root_pos", "root_quat", "dof_pos", "action", "dof_vel"):
            assert np.allclose(getattr(got, k), getattr(m, k), atol=1e-6, rtol=0), k  # stored as float32
        assert got.meta["episode"] == m.meta["episode"] and got.meta["completed"] == m.meta["completed"]
    assert main(["log", "export", str(log), "--out", str(tmp_path / "some"), "--exclude", "1"]) == 0
    assert [f.name for f in (tmp_path / "some").glob("*.npz")] == ["sway_ep000.npz"]
    assert main(["log", "export", str(log), "--out", str(tmp_path / "none"), "--episodes", "7"]) == 1
    assert "nothing to export: the log's episodes are [0, 1]" in capsys.readouterr().err


def test_planned_stops_are_not_faults() -> None:
    """`log show` lists a run that ended by the runtime's exit or the operator's stop under "stopped", not "faults"."""
    from deploy.log_commands import is_fault

    assert is_fault("fall: tilt 56 deg > 55 deg (g_z -0.56)") and is_fault("watchdog: no LowState for 52 ms")
    assert not is_fault("exit: time budget of 20 s reached") and not is_fault("exit: stop condition (until) met")
    assert not is_fault("stop requested by remote SELECT")
