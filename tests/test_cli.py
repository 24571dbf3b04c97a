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
