"""scripts/bench_delta_transfer.py: the per-joint comparison with the oracle and the delta-task returns, on logs of
a Kp x0.65-ankle simulator (the oracle compared with itself must agree exactly and earn more than zero Δa)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_delta_transfer  # noqa: E402
from test_delta_env import make_gapped_log  # noqa: E402


def test_oracle_against_itself_and_task_returns(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for i in range(2):
        make_gapped_log(steps=60, seed=i).save(logs / f"ep{i}.npz")
    gap = tmp_path / "ankle_weak.yaml"
    gap.write_text("name: ankle_weak\nkp_scale:\n  ankle: 0.65\n")
    out = tmp_path / "rows.json"
    spec = f"oracle:{gap}"
    assert bench_delta_transfer.main(["--logs", str(logs), "--gap", str(gap), "--delta", spec, "--returns", "6",
                                      "--json", str(out)]) == 0  # fmt: skip
    res = json.loads(out.read_text())
    rows = res[spec]
    assert len(rows) == 23 and {r["joint"] for r in rows if "ankle" in r["joint"]} == {
        "left_ankle_pitch_joint",
        "left_ankle_roll_joint",
        "right_ankle_pitch_joint",
        "right_ankle_roll_joint",
    }
    for r in rows:
        if "ankle" in r["joint"]:
            assert abs(r["slope"] - 1) < 1e-5 and r["corr"] > 0.9999 and r["oracle_abs"] > 0.01
            assert 0 < r["oracle_step"] == r["model_step"] < r["oracle_abs"]
            # a Kp x0.65 ankle answers 0.65 of a command: Δa changes by -0.35 per unit of applied action
            assert abs(r["oracle_sensitivity"] + 0.35) < 1e-3 and r["model_sensitivity"] == r["oracle_sensitivity"]
        else:
            assert abs(r["oracle_sensitivity"]) < 1e-3  # no gap in the other joints: the command acts in full
    ret = res["returns"]
    assert set(ret) == {"zero Δa", "oracle", spec}
    assert ret["oracle"]["return"] > ret["zero Δa"]["return"]
    assert abs(ret[spec]["return"] - ret["oracle"]["return"]) < 1e-6
    one = tmp_path / "one"  # a single episode: no step crosses into another
    make_gapped_log(steps=30, seed=0).save(one / "ep0.npz")
    assert bench_delta_transfer.main(["--logs", str(one), "--gap", str(gap), "--delta", spec]) == 0
