"""The command line reads options, positionals and ``key=value`` overrides in any order."""

from __future__ import annotations

import pytest

from asap.cli import build_parser, parse_command_line


@pytest.fixture(scope="module")
def parser():
    return build_parser()


def test_overrides_on_both_sides_of_an_option(parser) -> None:
    a = parse_command_line(parser, "pretrain --config C motion=X.pkl --out DIR run.max_time_s=1".split())
    assert a.command == "pretrain" and a.out == "DIR" and a.overrides == ["motion=X.pkl", "run.max_time_s=1"]


def test_positionals_on_both_sides_of_options(parser) -> None:
    a = parse_command_line(parser, "eval A.onnx --motions m.npz --out D --episodes 1 B.onnx".split())
    assert a.policies == ["A.onnx", "B.onnx"] and a.motions == ["m.npz"] and a.episodes == 1


def test_a_list_option_does_not_swallow_overrides(parser) -> None:
    a = parse_command_line(parser, "train-delta --motions logs/a logs/b run.max_time_s=5 --out D".split())
    assert a.motions == ["logs/a", "logs/b"] and a.overrides == ["run.max_time_s=5"] and a.out == "D"


def test_a_file_named_like_an_override_stays_in_the_list(parser, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "take=2").mkdir()
    a = parse_command_line(parser, "train-delta --motions take=2 --out D".split())
    assert a.motions == ["take=2"] and a.overrides == []


def test_option_values_that_look_like_overrides_stay_with_their_option(parser) -> None:
    # `collect` has no positional overrides: its own --override list keeps them
    a = parse_command_line(parser, "collect --virtual --policy p.onnx --override episode_s=3 --out D".split())
    assert a.override == ["episode_s=3"] and a.out == "D"


def test_nested_commands_keep_the_levels_above(parser) -> None:
    a = parse_command_line(parser, "log show run/x --json".split())
    assert a.command == "log" and a.log_command == "show" and a.log_dir == "run/x" and a.json and callable(a.func)
    assert not hasattr(a, "help")


def test_errors_show_the_commands_own_usage(parser, capsys) -> None:
    with pytest.raises(SystemExit):
        parse_command_line(parser, "train-delta --motions a --bogus".split())
    err = capsys.readouterr().err
    assert "usage: asap train-delta" in err and "--bogus" in err


def test_training_refuses_a_folder_that_holds_another_run(tmp_path, capsys) -> None:
    """`asap pretrain/train-delta/finetune --out DIR` over an earlier run would overwrite its policy and mix the two
    runs' checkpoints: refused in one line unless it resumes from DIR's own checkpoint."""
    from asap.cli import main
    from asap.rl.checkpoints import check_fresh_run

    run = tmp_path / "run"
    check_fresh_run(run, None)  # no folder yet
    run.mkdir()
    check_fresh_run(run, None)  # an empty folder
    (run / "model_160.pt").write_bytes(b"")
    check_fresh_run(run, run / "model_160.pt")  # resuming it
    with pytest.raises(FileExistsError, match=r"holds a training run \(model_160.pt\): continue it with --resume"):
        check_fresh_run(run, tmp_path / "other" / "model_599.pt")  # fine-tuning from elsewhere into it
    for argv in (["pretrain", "--out", str(run)], ["train-delta", "--motions", str(tmp_path), "--out", str(run)]):
        assert main([*argv, "run.max_iterations=1"]) == 1
        assert capsys.readouterr().err.strip().endswith("give another output folder (--out)")


def test_a_run_folder_stands_for_its_final_checkpoint(tmp_path) -> None:
    """`--checkpoint run/demo/pretrain` (finetune), `--resume DIR` (pretrain), `asap export DIR`: the checkpoint
    metrics.json names (stored as the training's own, cwd-relative path), else the highest-numbered one."""
    import json

    from asap.rl.checkpoints import resolve_checkpoint

    run = tmp_path / "pretrain"
    run.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        resolve_checkpoint(run)
    for name in ("model_100.pt", "model_599.pt", "model_600_iterate.pt", "model_50.pt"):
        (run / name).write_bytes(b"")
    assert resolve_checkpoint(run) == run / "model_599.pt"
    (run / "model_1000.pt").write_bytes(b"")
    assert resolve_checkpoint(run) == run / "model_1000.pt"
    (run / "metrics.json").write_text(json.dumps({"checkpoint": "elsewhere/run/model_599.pt"}))
    assert resolve_checkpoint(run) == run / "model_599.pt"
    assert resolve_checkpoint(run / "model_100.pt") == run / "model_100.pt"


def test_warnings_are_one_line_and_a_closed_pipe_ends_quietly(tmp_path) -> None:
    """`asap ...` prints a warning as one `warning: ...` line (no source line that reads like a traceback), and
    `asap motion info F | head -1` ends without a BrokenPipeError traceback."""
    import subprocess
    import sys

    from asap.motion.synthetic import synthetic_motion
    from asap.paths import repo_path

    m = synthetic_motion(num_frames=21, fps=50, speed=(0, 0, 0), yaw_rate=0.0, amplitude=0.05)
    m.dof_pos[:, 0] = 5.0  # far past the hip pitch limit
    m.save(tmp_path / "bad.npz")
    asap = [sys.executable, "-m", "asap.cli"]
    r = subprocess.run([*asap, "motion", "convert", str(tmp_path / "bad.npz"), str(tmp_path / "out.npz")],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0 and r.stderr.splitlines() == [
        "warning: 1 joint(s) exceed their limits; worst left_hip_pitch_joint by 2.120 rad over 21 frames "
        "(JointLimitWarning)"
    ]
    clip = repo_path("motions/builtin/arm_wave.npz")
    cmd = f"{sys.executable} -m asap.cli motion info {clip} | head -1"
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith(f"{clip}: g1_23dof") and r.stdout.count("\n") == 1 and "Traceback" not in r.stderr


def test_progress_bars_in_a_log_redraw_rarely() -> None:
    """A bar writing to a file (a log, a pipe) redraws at most every 30 s instead of every 0.1 s; on a terminal it
    keeps tqdm's default."""
    import io

    from asap.utils.progress import LOG_INTERVAL_S, progress_bar

    log = io.StringIO()
    bar = progress_bar(range(1000), file=log)
    for _ in bar:
        pass
    bar.close()
    assert bar.mininterval == LOG_INTERVAL_S and log.getvalue().count("\r") <= 3

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_bar(total=1, file=Terminal()).mininterval == 0.1


def test_every_command_takes_debug(parser) -> None:
    """`--debug` (the traceback instead of the one-line error) exists on every command, not only on some."""
    from asap.cli import _leaf, _subparsers

    def leaves(p, path):
        sp = _subparsers(p)
        if sp is None:
            yield path, p
            return
        for name, child in sp.choices.items():
            yield from leaves(child, [*path, name])

    found = list(leaves(parser, []))
    assert len(found) > 20
    for path, p in found:
        assert "--debug" in p._option_string_actions, path
        assert _leaf(parser, path)[0] is p
