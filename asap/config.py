"""Dataclass configs filled from YAML files and dotted command-line overrides (``a.b=value``).

Every stage's config is a dataclass with a one-line docstring per field. ``load_config`` builds it from
defaults, then a YAML file, then overrides; ``save_config`` writes the resolved config beside artifacts.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not fit the config dataclass."""


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, getattr(types, "UnionType", typing.Union)):  # UnionType: Python >= 3.10
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ConfigError as e:  # try the next member
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} fits none of {tp}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        out = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except ValueError as e:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from e
        if f != int(f):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from e
    if tp is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, also on Python 3.8/3.9 (the robot runtime's oldest): there the PEP 604/585
    annotations (``str | None``, ``tuple[str, ...]``) are evaluated by the ``eval_type_backport`` library."""
    if sys.version_info >= (3, 10):
        return typing.get_type_hints(cls)
    from eval_type_backport import eval_type_backport

    hints: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        globalns = vars(sys.modules[base.__module__])
        for name, ann in base.__dict__.get("__annotations__", {}).items():
            ref = typing.ForwardRef(ann) if isinstance(ann, str) else ann
            hints[name] = eval_type_backport(ref, globalns, dict(vars(base)))
    return hints


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a (nested) mapping; unknown keys are an error naming the valid ones."""
    hints = _type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass config (tuples become lists)."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(cfg)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1,2]"]`` into a nested dict; values are parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = value
    return out


def merge_dicts(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``new``, nested dicts merged key by key (config layering: defaults < YAML < CLI)."""
    out = dict(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_dicts(out[k], v)
        else:
            out[k] = v
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls``, updated by the YAML file at ``path``, then by dotted ``overrides``."""
    data = to_dict(cls())
    if path is not None:
        from asap.paths import repo_path

        p = repo_path(path)  # shipped configs (configs/...) also resolve from another working directory
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
        data = merge_dicts(data, loaded)
    if overrides:
        data = merge_dicts(data, parse_overrides(overrides))
    return from_dict(cls, data)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
