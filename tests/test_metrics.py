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
