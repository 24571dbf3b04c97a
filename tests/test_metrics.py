"""Tracking metrics on hand-computed trajectories; `asap play` and the demo table's rollout comparison agree."""

from __future__ import annotations

import numpy as np
import pytest

from asap.eval.metrics import FAIL_DISTANCE_M, body_position_errors, mean_metrics, tracking_metrics


def test_metrics_hand_computed():
    t = np.arange(10, dtype=float)
    ref = np.zeros((10, 3, 3))
    ref[:, :, 0] = t[:, None] * 0.01  # everything moves 1 cm per frame in x
    sim = ref.copy()
    sim[:, :, 2] += 0.02  # a constant 2 cm offset of the whole body: global error only
    m = tracking_metrics(sim, ref)
    assert m.E_g_mpjpe == pytest.approx(20.0) and m.E_mpjpe == pytest.approx(0.0, abs=1e-9)
    assert m.E_vel == pytest.approx(0.0, abs=1e-9) and m.E_acc == pytest.approx(0.0, abs=1e-9) and m.success
    sim2 = ref.copy()
    sim2[:, 1, 1] += 0.004 * t  # body 1 drifts 4 mm per frame in y
    m2 = tracking_metrics(sim2, ref)
    assert m2.E_vel == pytest.approx(4.0 / 3)  # one of three bodies off by 4 mm/frame
    assert m2.E_acc == pytest.approx(0.0, abs=1e-9)
    assert m2.E_mpjpe == pytest.approx(1000 * np.mean(0.004 * t[1:]) / 3)  # frame 0 is the start state
    assert m2.frames == 9


def test_failure_and_errors():
    ref = np.zeros((5, 2, 3))
    sim = ref.copy()
    sim[3:, :, 0] = 0.6
    m = tracking_metrics(sim, ref)
    assert not m.success
    start_only = ref.copy()
    start_only[0] += FAIL_DISTANCE_M + 0.1  # the start state is not the policy's doing: no failure
    assert tracking_metrics(start_only, ref).success
    agg = mean_metrics([m, tracking_metrics(ref, ref)])
    assert agg["success_rate"] == 0.5
    with pytest.raises(ValueError, match="both"):
        tracking_metrics(np.zeros((5, 2, 3)), np.zeros((5, 3, 3)))
    with pytest.raises(ValueError, match="at least 3"):
        tracking_metrics(np.zeros((2, 2, 3)), np.zeros((2, 2, 3)))


def test_per_frame_errors_are_one_function_for_numpy_and_torch():
    import torch

    rng = np.random.default_rng(1)
    sim, ref = rng.normal(size=(2, 7, 27, 3))
    g, local = body_position_errors(sim, ref)
    gt, lt = body_position_errors(torch.from_numpy(sim), torch.from_numpy(ref))
    np.testing.assert_allclose(gt.numpy(), g, rtol=1e-12)
    np.testing.assert_allclose(lt.numpy(), local, rtol=1e-12)
    np.testing.assert_allclose(g, np.linalg.norm(sim - ref, axis=-1).mean(-1))
    m = tracking_metrics(sim, ref)
    assert m.E_g_mpjpe == pytest.approx(1000 * g[1:].mean()) and m.E_mpjpe == pytest.approx(1000 * local[1:].mean())


@pytest.mark.parametrize("bias", [0.0, 3.0])
def test_play_and_the_demo_table_average_the_same_frames(tmp_path, bias):
    """`asap play`'s summary and the pipeline's rollout comparison (the demo table) give the same numbers.

    bias 0: a policy that holds the default pose while the clip moves (errors, no fall); bias 3: large actions,
    the robot tilts over before the clip ends (the failing frame counts on both sides)."""
    import torch

    from asap.eval.compare import compare_rollout
    from asap.motion.synthetic import synthetic_motion
    from asap.rl.play import play

    motion = tmp_path / "clip.npz"
    synthetic_motion(num_frames=21, fps=50, speed=(0.2, 0, 0), yaw_rate=0.3, amplitude=0.3).save(motion)
    net = torch.nn.Linear(380, 23)
    torch.nn.init.zeros_(net.weight)
    torch.nn.init.constant_(net.bias, bias)
    onnx = tmp_path / "policy.onnx"
    torch.onnx.export(net, (torch.zeros(1, 380),), str(onnx), input_names=["actor_obs"], output_names=["action"],
                      opset_version=13, dynamo=False)  # fmt: skip
    s = play(onnx, motion, out_dir=tmp_path / "play", video=False, layout="asap_v1", variant="g1_23dof")
    m = compare_rollout(s["rollout"], motion)
    assert m.frames == s["steps_survived"][0]
    assert m.E_mpjpe == pytest.approx(s["E_mpjpe_mm"], abs=0.01)
    assert m.E_g_mpjpe == pytest.approx(s["E_g_mpjpe_mm"], abs=0.01)
    assert s["E_mpjpe_mm"] > 5.0  # not a trivial zero-error comparison
    assert s["success"] == (bias == 0.0)
    if bias:
        assert s["steps_survived"][0] < s["expected_steps"][0]
    else:
        assert m.success and m.frames == s["expected_steps"][0]


def _yaw(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# a small rigid "skeleton" relative to its root (m): root, a hip 10 cm ahead, a head 20 cm up, a hand to the side
_BODIES = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.2], [0.0, 0.05, 0.1]])


def test_pa_mpjpe_ignores_a_rotation_and_scale_of_the_whole_body():
    t = np.arange(8, dtype=float)
    root = np.stack([0.01 * t, 0 * t, 0.8 + 0 * t], axis=-1)[:, None]  # (T, 1, 3)
    ref = root + _BODIES
    sim = root + 2.0 * _BODIES @ _yaw(np.pi / 2).T  # turned 90 degrees about the root and twice as large
    m = tracking_metrics(sim, ref)
    # root-relative errors: |2 Rz(90) x - x| = hip |(0, .2, 0) - (.1, 0, 0)|, head |(0, 0, .4) - (0, 0, .2)|,
    # hand |(-.1, 0, .2) - (0, .05, .1)|
    expected = (0 + np.hypot(0.1, 0.2) + 0.2 + np.sqrt(0.01 + 0.0025 + 0.01)) / 4
    assert m.E_mpjpe == pytest.approx(1000 * expected) and m.E_g_mpjpe == pytest.approx(1000 * expected)
    assert m.PA_MPJPE == pytest.approx(0.0, abs=1e-6)
    noisy = sim.copy()
    noisy[:, 1, 2] += 0.01  # one body off the similarity: PA-MPJPE sees it, less than the raw 1 cm / 4 bodies
    assert 0 < tracking_metrics(noisy, ref).PA_MPJPE < 10.0 / 4 + 1e-9


def test_a_yaw_drift_of_the_whole_body():
    """The rollout turns about its root by 0.02 rad more every frame: a root-relative error that grows as
    2 rho sin(theta / 2) for a body at horizontal distance rho from the root axis; no shape error."""
    T = 30
    theta = 0.02 * np.arange(T)
    root = np.array([0.0, 0.0, 0.8])
    ref = np.broadcast_to(root + _BODIES, (T, 4, 3))
    sim = root + np.einsum("tij,bj->tbi", np.stack([_yaw(a) for a in theta]), _BODIES)
    rho = np.linalg.norm(_BODIES[:, :2], axis=-1)  # 0, 0.1, 0, 0.05
    per_frame = (2 * rho[None] * np.sin(theta[1:, None] / 2)).mean(-1)
    m = tracking_metrics(sim, ref)
    assert m.E_mpjpe == pytest.approx(1000 * per_frame.mean()) and m.E_g_mpjpe == pytest.approx(m.E_mpjpe)
    assert m.PA_MPJPE == pytest.approx(0.0, abs=1e-6)
    # the displacement error per frame: bodies move on circles by a chord of 2 rho sin(0.01) per frame
    assert m.E_vel == pytest.approx(1000 * (2 * rho * np.sin(0.01)).mean())


def test_a_rollout_one_frame_ahead_of_its_reference():
    """Root accelerating in x (x = 1 mm k^2), a body drifting from it at 4 mm/frame in y: a rollout one frame
    ahead is off by the root's 2 mm/frame velocity change in E_vel and by 4 mm (one of two bodies) in E_mpjpe."""
    k = np.arange(21, dtype=float)
    track = np.zeros((21, 2, 3))
    track[:, :, 0] = 0.001 * k[:, None] ** 2
    track[:, 1, 1] = 0.004 * k
    ref, ahead = track[:-1], track[1:]
    m = tracking_metrics(ahead, ref)
    assert m.E_vel == pytest.approx(2.0) and m.E_acc == pytest.approx(0.0, abs=1e-9)
    assert m.E_mpjpe == pytest.approx(2.0)
    kk = k[1:-1]  # frames 1..T-1
    dx = 0.001 * (2 * kk + 1)
    assert m.E_g_mpjpe == pytest.approx(1000 * np.mean((dx + np.hypot(dx, 0.004)) / 2))
    aligned = tracking_metrics(ref, ref)
    for key in ("E_g_mpjpe", "E_mpjpe", "E_vel", "E_acc", "PA_MPJPE"):
        assert getattr(aligned, key) == pytest.approx(0.0, abs=1e-9)


def test_joint_angle_error_in_degrees():
    ref_q = 0.3 * np.sin(np.linspace(0, 3, 10))[:, None] * np.ones((1, 4))
    q = ref_q.copy()
    q[:, 0] += 0.1  # one of four joints 0.1 rad off
    q[0] += 5.0  # the start state is not the policy's doing
    body = np.zeros((10, 2, 3))
    m = tracking_metrics(body, body, dof_pos=q, ref_dof_pos=ref_q)
    assert m.E_joint_angle == pytest.approx(np.degrees(0.1) / 4)
    assert tracking_metrics(body, body).E_joint_angle is None
    with pytest.raises(ValueError, match="both"):
        tracking_metrics(body, body, dof_pos=q)
    with pytest.raises(ValueError, match="joint angles"):
        tracking_metrics(body, body, dof_pos=q[:, :3], ref_dof_pos=ref_q)


def test_body_group_errors_and_their_average():
    from asap.eval.metrics import g1_body_groups
    from asap.robot.spec import FEET, UPPER_BODY, get_spec

    spec = get_spec()
    groups = g1_body_groups()
    assert len(groups["upper"]) == len(UPPER_BODY) == 11 and len(groups["lower"]) == 16
    assert [spec.body_names[i] for i in groups["feet"]] == list(FEET)
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(6, 27, 3))
    sim = ref.copy()
    sim[:, list(groups["feet"]), 2] += 0.03  # both feet 3 cm too high
    m = tracking_metrics(sim, ref)
    assert m.E_g_mpjpe_feet == pytest.approx(30.0) and m.E_mpjpe_feet == pytest.approx(30.0)
    assert m.E_g_mpjpe_lower == pytest.approx(30.0 * 2 / 16) and m.E_mpjpe_lower == pytest.approx(30.0 * 2 / 16)
    assert m.E_g_mpjpe_upper == pytest.approx(0.0) and m.E_g_mpjpe_vr_3point == pytest.approx(0.0)
    assert m.E_g_mpjpe == pytest.approx(30.0 * 2 / 27)
    assert tracking_metrics(sim[:, :3], ref[:, :3]).E_g_mpjpe_feet is None  # not the G1's bodies: no groups
    own = tracking_metrics(sim, ref, groups={"feet": [0]})  # the caller's own grouping
    assert own.E_g_mpjpe_feet == pytest.approx(0.0) and own.E_g_mpjpe_upper is None
    agg = mean_metrics([m, tracking_metrics(ref, ref)])
    assert agg["E_g_mpjpe_feet"] == pytest.approx(15.0) and agg["PA_MPJPE"] >= 0
    assert "E_joint_angle" not in agg  # no rollout had joint angles
    q = np.zeros((6, 3))
    agg2 = mean_metrics(
        [
            tracking_metrics(ref, ref, dof_pos=q + 0.01, ref_dof_pos=q),
            tracking_metrics(ref, ref, dof_pos=q, ref_dof_pos=q),
        ]
    )
    assert agg2["E_joint_angle"] == pytest.approx(np.degrees(0.01) / 2)


def test_rollout_comparison_reports_joint_angles_and_groups():
    from dataclasses import replace

    from asap.eval.compare import compare_rollout
    from asap.motion.synthetic import synthetic_motion

    ref = synthetic_motion(num_frames=40, seed=4)
    m = compare_rollout(replace(ref, dof_pos=ref.dof_pos + 0.02), ref)
    assert m.E_joint_angle == pytest.approx(np.degrees(0.02), rel=1e-4)
    assert m.E_mpjpe > 0 and m.E_mpjpe_upper is not None and m.E_mpjpe_feet > 0
    same = compare_rollout(ref, ref)
    assert same.E_joint_angle == pytest.approx(0.0, abs=1e-4) and same.PA_MPJPE == pytest.approx(0.0, abs=1e-3)


def test_slow_fast_split_of_a_posture_offset_and_a_dither():
    from asap.eval.metrics import slow_fast_mpjpe

    t = np.arange(200)
    ref = np.zeros((200, 2, 3))
    ref[:, 1, 0] = 0.3  # body 1 sits 30 cm in front of the root
    posture = ref.copy()
    posture[:, 1, 2] += 0.04  # body 1 held 4 cm high throughout
    total, slow, fast = slow_fast_mpjpe(posture, ref, fps=50.0)
    assert (total, slow) == (pytest.approx(20.0), pytest.approx(20.0)) and fast == pytest.approx(0.0, abs=1e-9)
    dither = ref.copy()
    dither[:, 1, 1] += 0.01 * (-1.0) ** t  # body 1 alternates +-1 cm every frame (25 Hz at 50 fps)
    total, slow, fast = slow_fast_mpjpe(dither, ref, fps=50.0)
    assert total == pytest.approx(5.0) and slow < 0.1 and fast == pytest.approx(5.0, rel=0.02)


def test_error_split_script_on_logged_episodes(tmp_path, capsys):
    import importlib.util
    import json
    from dataclasses import replace

    from asap.motion.synthetic import synthetic_motion

    spec = importlib.util.spec_from_file_location("split", "scripts/tracking_error_split.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ref = synthetic_motion(num_frames=60, seed=4)
    ref.save(tmp_path / "clip.npz")
    logs = tmp_path / "logs"
    logs.mkdir()
    q = ref.dof_pos.copy()
    q[:, 3] += 0.1  # one joint held 0.1 rad off: a slow error only
    replace(ref, dof_pos=q).save(logs / "ep0.npz")
    out = mod.main(["--motion", str(tmp_path / "clip.npz"), "--logs", str(logs), "--json", str(tmp_path / "s.json")])
    r = out[str(logs)]
    assert r["episodes"] == 1 and r["E_mpjpe"] > 1.0 and r["E_mpjpe_fast"] < 0.1 * r["E_mpjpe"]
    name, err = r["worst_joints_deg"][0]
    assert name == ref.joint_names[3] and err == pytest.approx(np.degrees(0.1), abs=0.1)
    assert json.loads((tmp_path / "s.json").read_text())[str(logs)]["episodes"] == 1
    assert "slow" in capsys.readouterr().out
