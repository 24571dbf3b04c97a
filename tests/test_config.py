"""Dataclass configs: YAML files, dotted overrides, clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from asap.config import ConfigError, load_config, parse_overrides, save_config


@dataclass
class Inner:
    """A nested section."""

    lr: float = 1e-3
    """Learning rate."""
    layers: list[int] = field(default_factory=lambda: [256, 128])
    """Hidden sizes."""


@dataclass
class Outer:
    """A top-level config."""

    name: str = "x"
    """Run name."""
    num_envs: int = 4
    """Envs."""
    use_dr: bool = False
    """Domain randomisation."""
    motion: str | None = None
    """Motion path."""
    algo: Inner = field(default_factory=Inner)
    """Nested section."""


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("num_envs: 16\nalgo:\n  lr: 0.01\n")
    cfg = load_config(Outer, p, ["algo.layers=[64,32]", "use_dr=true", "motion=a.npz", "num_envs=32"])
    assert cfg.num_envs == 32 and cfg.algo.lr == 0.01 and cfg.algo.layers == [64, 32]
    assert cfg.use_dr is True and cfg.motion == "a.npz" and cfg.name == "x"
    save_config(cfg, tmp_path / "out" / "resolved.yaml")
    again = load_config(Outer, tmp_path / "out" / "resolved.yaml")
    assert again == cfg


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['num_env'\]"):
        load_config(Outer, None, ["num_env=3"])
    with pytest.raises(ConfigError, match="algo.lr: expected a number"):
        load_config(Outer, None, ["algo.lr=fast"])
    with pytest.raises(ConfigError, match="num_envs: expected an integer"):
        load_config(Outer, None, ["num_envs=2.5"])
    with pytest.raises(ConfigError, match="must look like"):
        parse_overrides(["num_envs"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "missing.yaml")


def test_shipped_configs_and_motions_resolve_from_any_directory(tmp_path, monkeypatch):
    from asap.paths import repo_path, shipped_dir
    from asap.rl.config import PretrainConfig
    from asap.rl.runner import motion_sources

    monkeypatch.chdir(tmp_path)
    cfg = load_config(PretrainConfig, "configs/pretrain/demo.yaml")
    assert cfg.motion == "motions/builtin/arm_wave.npz" and cfg.num_envs == 128
    assert motion_sources(cfg.motion) == [str(shipped_dir("motions") / "builtin/arm_wave.npz")]
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text("num_envs: 7\n")
    local = (tmp_path / "configs" / "mine.yaml").resolve()
    assert repo_path("configs/mine.yaml").resolve() == local  # a local file wins over the checkout
    with pytest.raises(FileNotFoundError, match="does not exist"):
        motion_sources("motions/nope.npz")
