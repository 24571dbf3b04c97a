"""`asap sysid`: the system-identification baseline (asap-method.md section 6) — find simulator parameters that make
the training simulator reproduce logged episodes in open loop, from the same logs `asap train-delta` learns from.

A candidate is a set of simulator dynamics (:class:`asap.sim.dynamics.SimDynamics`): per-joint-group Kp/Kd scales,
motor strength, joint damping/friction/armature, the base link's mass and centre of mass, floor friction, action
delay (``params``: which of them to search, and where). Its loss is the open-loop replay error of the training
episodes' windows (:func:`asap.eval.openloop.replay`: logged state at the window start, logged actions shaped as
the runtime shaped them) in a simulator set to the candidate: ``sum_k loss[k] * mean over windows of E_k`` with
the replay's metrics (default: E_g-mpjpe alone, the global body position error in mm — it sees the joint error and
the root drift it causes; add ``E_mpjpe`` to weight the root-relative body error). A whole population is scored in
ONE batched replay: the training episodes are repeated once per candidate and every candidate's block of windows
runs in envs set to its dynamics (per-env :meth:`asap.sim.base.Simulator.set_dynamics`).

Optimisers: CMA-ES (``method: cma``, the ``cma`` package, in the search box normalised to [0, 1] per parameter,
started at the simulator's nominal values) or a grid (``method: grid``, the paper's option: every combination of
values of ``params``, e.g. base CoM, base mass and per-group Kp/Kd ratios: configs/sysid/grid.yaml), scored
``population`` candidates per batch. Both save their state after every generation/batch (``sysid_state.pkl``);
re-running the same command continues from there. Output in ``out_dir``: ``dynamics.yaml`` (the best candidate:
`asap finetune --dynamics`), ``openloop.{json,md,png}`` (held-out episodes, the same split rule as
`asap train-delta`: rows OpenLoop, SysID, and Oracle when the logs' gap is known), ``sysid.json`` (summary and
per-generation history), ``split.json``, ``config.yaml``.

Integer parameters (``action_delay``, ``substep_delay``) are rounded. Windows start with the logged previous target
in flight (:meth:`asap.sim.base.Simulator.set_previous_targets`), so a substep delay replays exactly; an action delay
d > 1 replays the first d - 1 steps of a window with that one target instead of the older logged ones.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asap.config import save_config, to_dict
from asap.control import TargetShaping
from asap.delta.logs import gather_logs, load_logs, replay_shaping, write_split
from asap.delta.train import split_episodes
from asap.eval.openloop import METRIC_KEYS, ReplayFn, openloop_eval, replay
from asap.motion.motion import Motion
from asap.motion.motionlib import MotionLib
from asap.robot.model import ModelOptions
from asap.robot.spec import get_spec
from asap.sim.base import DYNAMICS_BODIES, SimConfig, Simulator, make_simulator
from asap.sim.dynamics import JOINT_FACTORS, JOINT_VALUES, SimDynamics, apply_dynamics, save_dynamics
from deploy.gap import per_joint

METHODS = ("cma", "grid")
"""Optimisers of `asap sysid`."""

AXES = ("x", "y", "z")
"""Components of ``base_com.<axis>``."""

STATE_FILE = "sysid_state.pkl"
"""The optimiser's state in ``out_dir`` (written after every generation; read to resume)."""


def _default_groups() -> dict[str, list[str]]:
    return {"hips": ["hip"], "knees": ["knee"], "ankles": ["ankle"], "legs": ["hip", "knee", "ankle"],
            "waist": ["waist"], "arms": ["shoulder", "elbow", "wrist"]}  # fmt: skip


def _default_params() -> list[str]:
    return ["kp_scale.hips", "kp_scale.knees", "kp_scale.ankles", "kp_scale.waist", "kp_scale.arms", "kd_scale.hips",
            "kd_scale.knees", "kd_scale.ankles", "joint_frictionloss.legs", "base_mass", "base_com.x", "base_com.y",
            "action_delay"]  # fmt: skip


def _default_ranges() -> dict[str, list[float]]:
    return {"kp_scale": [0.3, 1.5], "kd_scale": [0.3, 1.5], "motor_strength": [0.5, 1.2], "joint_damping": [0.0, 1.0],
            "joint_frictionloss": [0.0, 1.0], "joint_armature": [0.005, 0.1], "base_mass": [-3.0, 3.0],
            "base_com": [-0.05, 0.05], "friction": [0.3, 1.5], "action_delay": [0, 2],
            "substep_delay": [0, 3]}  # fmt: skip


INTEGER_PARAMS = ("action_delay", "substep_delay")
"""Parameters identified as integers (rounded): command latency in control steps and in physics substeps."""


@dataclass
class SysIDConfig:
    """`asap sysid`: identify simulator dynamics from logged episodes by open-loop replay error."""

    motions: list[str] = field(default_factory=list)
    """Logged episodes: Motion files with ``action`` or folders of them (`asap collect` output)."""
    out_dir: str = "run/sysid"
    """Run directory (dynamics.yaml, openloop.*, sysid.json, sysid_state.pkl)."""
    held_out: float = 0.25
    """Share of episodes held out for the report (whole episodes; `asap train-delta`'s rule and seed)."""
    gap: str | None = None
    """Reality-gap profile the logs came from, when known (adds the Oracle row; default: what the logs record)."""
    shaping: TargetShaping = field(default_factory=TargetShaping)
    """The runtime's target shaping the replay applies to logged actions (the logs must agree)."""
    method: str = "cma"
    """Optimiser: 'cma' (CMA-ES over ``params`` in their ranges) or 'grid' (every combination of their values)."""
    groups: dict[str, list[str]] = field(default_factory=_default_groups)
    """Joint groups: name -> joint-name patterns (a joint belongs to a group when its name contains a pattern)."""
    params: list[str] = field(default_factory=_default_params)
    """Parameters to identify: ``<field>.<group>`` with field kp_scale, kd_scale, motor_strength (factors),
    joint_damping (N m s/rad), joint_frictionloss (N m), joint_armature (kg m^2); ``base_mass`` (kg added to
    ``base_body``), ``base_com.x|y|z`` (m, ``base_body`` frame), ``friction`` (contacts), ``action_delay`` (control
    steps, rounded), ``substep_delay`` (latency below a control step in 5 ms physics substeps, 0-3, rounded)."""
    ranges: dict[str, list[float]] = field(default_factory=_default_ranges)
    """Search range [low, high] by parameter field (``kp_scale``, ``base_com``...) or by full name
    (``kp_scale.ankles``: wins over its field's range)."""
    grid: dict[str, list[float]] = field(default_factory=dict)
    """``method: grid``: the values to try by parameter name (a parameter not listed: ``grid_points`` values evenly
    spread over its range)."""
    grid_points: int = 3
    """Values per parameter of the grid that ``grid`` does not list."""
    max_grid: int = 4096
    """Refuse grids with more combinations than this."""
    base_body: str = "torso_link"
    """Link whose mass and CoM ``base_mass``/``base_com`` move (the link domain randomisation offsets)."""
    population: int = 12
    """Candidates scored per generation (CMA-ES population; grid batch size)."""
    generations: int = 30
    """CMA-ES generations (grid: unused, every combination is scored)."""
    sigma0: float = 0.25
    """Initial CMA-ES step size, as a fraction of every parameter's range."""
    horizon_s: float = 1.0
    """Length of the replayed training windows (s)."""
    stride_s: float = 0.5
    """Time between the starts of training windows (s)."""
    loss: dict[str, float] = field(default_factory=lambda: {"E_g_mpjpe": 1.0})
    """Loss weights over the replay's metrics (E_g_mpjpe, E_mpjpe: mm; E_vel: mm/frame; E_acc: mm/frame^2)."""
    resume: bool = True
    """Continue from ``out_dir/sysid_state.pkl`` when it exists (it must come from the same search settings)."""
    horizons_s: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])
    """Horizons of the held-out open-loop report (s)."""
    report_stride_s: float = 0.25
    """Time between window starts in the report (s)."""
    sim: str = "mujoco"
    """Simulator backend of the replay."""
    variant: str = "g1_23dof"
    """Robot variant of the logs."""
    threads: int = 2
    """Native simulator threads."""
    device: str = "cpu"
    """Torch device."""
    physics: ModelOptions = field(default_factory=ModelOptions)
    """Physics options of the replay simulator (the policy's training physics)."""
    torch_threads: int = 1
    """torch threads (small tensors: 1 avoids thread-pool overhead)."""
    seed: int = 0
    """Seed of the held-out split and of CMA-ES."""


@dataclass(frozen=True)
class SearchSpace:
    """The searched parameters (names in ``SysIDConfig.params`` form) and how a vector of values becomes dynamics."""

    names: tuple[str, ...]
    """Parameter names, in vector order."""
    low: np.ndarray
    """(D,) lower bounds."""
    high: np.ndarray
    """(D,) upper bounds."""
    groups: dict[str, tuple[str, ...]]
    """Joint group -> its patterns that match a joint of the variant."""
    base_body: str
    """Link of ``base_mass`` / ``base_com``."""

    @classmethod
    def of(cls, cfg: SysIDConfig) -> SearchSpace:
        """Validate ``cfg.params`` and their ranges against the variant; ``ValueError`` in one line."""
        names = get_spec(cfg.variant).joint_names
        groups: dict[str, tuple[str, ...]] = {}
        for g, patterns in cfg.groups.items():
            hit = tuple(p for p in patterns if _matches(p, names))
            if not hit:
                raise ValueError(f"joint group {g!r}: none of {patterns} matches a joint of {cfg.variant}")
            groups[g] = hit
        if cfg.base_body not in DYNAMICS_BODIES:
            raise ValueError(f"base_body {cfg.base_body!r} is not a link; links: {', '.join(DYNAMICS_BODIES)}")
        if not cfg.params:
            raise ValueError("nothing to identify: params is empty")
        if len(set(cfg.params)) != len(cfg.params):
            raise ValueError(f"params names a parameter twice: {cfg.params}")
        max_delay = SimConfig().max_action_delay
        max_substeps = SimConfig().spec.decimation - 1
        lo, hi = [], []
        for name in cfg.params:
            kind, _, sub = name.partition(".")
            if kind in JOINT_FACTORS + JOINT_VALUES:
                if sub not in groups:
                    raise ValueError(f"parameter {name!r}: unknown joint group {sub!r}; groups: {', '.join(groups)}")
            elif kind == "base_com":
                if sub not in AXES:
                    raise ValueError(f"parameter {name!r}: base_com takes .x, .y or .z")
            elif kind not in ("base_mass", "friction", *INTEGER_PARAMS) or sub:
                raise ValueError(f"unknown parameter {name!r}; see `asap sysid --help`")
            r = cfg.ranges.get(name, cfg.ranges.get(kind))
            if r is None or len(r) != 2 or float(r[0]) >= float(r[1]):
                raise ValueError(f"parameter {name!r}: ranges.{kind} (or ranges[{name}]) must be [low, high] with "
                                 f"low < high, got {r}")  # fmt: skip
            if kind == "action_delay" and (float(r[0]) < 0 or float(r[1]) > max_delay):
                raise ValueError(f"action_delay must stay in [0, {max_delay}] control steps, got {r}")
            if kind == "substep_delay" and (float(r[0]) < 0 or float(r[1]) > max_substeps):
                raise ValueError(f"substep_delay must stay in [0, {max_substeps}] physics substeps, got {r}")
            lo.append(float(r[0]))
            hi.append(float(r[1]))
        extra = sorted(set(cfg.grid) - set(cfg.params))
        if extra:
            raise ValueError(f"grid lists {extra}, which params does not name")
        return cls(tuple(cfg.params), np.array(lo), np.array(hi), groups, cfg.base_body)

    def grid(self, cfg: SysIDConfig) -> list[dict[str, float]]:
        """Every combination of the grid's values (``cfg.grid``, else ``grid_points`` values over the range)."""
        axes = []
        for n, lo, hi in zip(self.names, self.low, self.high, strict=True):
            v = [float(x) for x in cfg.grid[n]] if n in cfg.grid else np.linspace(lo, hi, cfg.grid_points).tolist()
            axes.append(sorted({float(round(x)) for x in v}) if n in INTEGER_PARAMS else v)
        size = math.prod(len(a) for a in axes)
        if size > cfg.max_grid:
            raise ValueError(f"the grid has {size} combinations (max_grid {cfg.max_grid}): fewer params or values")
        return [dict(zip(self.names, c, strict=True)) for c in itertools.product(*axes)]

    def from_unit(self, x: np.ndarray) -> dict[str, float]:
        """Parameter values of a point ``x`` (D,) of the normalised box [0, 1]^D (integers rounded)."""
        v = self.low + np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0) * (self.high - self.low)
        return {n: (float(round(a)) if n in INTEGER_PARAMS else float(a)) for n, a in zip(self.names, v, strict=True)}

    def to_unit(self, values: dict[str, float]) -> np.ndarray:
        """The normalised point of parameter values (clipped into the box)."""
        v = np.array([values[n] for n in self.names], dtype=np.float64)
        return np.clip((v - self.low) / (self.high - self.low), 0.0, 1.0)

    def nominal(self, sim: Simulator) -> dict[str, float]:
        """The simulator's own value of every parameter (factors 1, mean of a group's joints for absolute values,
        no added mass/CoM/delay)."""
        nom = sim.default_dynamics(1)
        out: dict[str, float] = {}
        for name in self.names:
            kind, _, sub = name.partition(".")
            if kind in JOINT_VALUES:
                mask = self.mask(sub, sim.spec.joint_names)
                out[name] = float(getattr(nom, kind)[0].cpu().numpy()[mask].mean())
            elif kind == "friction":
                out[name] = float(nom.friction[0])  # type: ignore[index]
            else:
                out[name] = 1.0 if kind in JOINT_FACTORS else 0.0
        return out

    def mask(self, group: str, joint_names: tuple[str, ...]) -> np.ndarray:
        """(J,) bool: the joints of ``group``."""
        return per_joint(dict.fromkeys(self.groups[group], 0.0), joint_names) == 0.0

    def dynamics(self, values: dict[str, float], name: str = "sysid", description: str = "") -> SimDynamics:
        """The :class:`SimDynamics` of parameter values (a group's value goes to each of its patterns)."""
        d = SimDynamics(name=name, description=description)
        com = [0.0, 0.0, 0.0]
        for pname, v in values.items():
            kind, _, sub = pname.partition(".")
            if kind in JOINT_FACTORS + JOINT_VALUES:
                getattr(d, kind).update(dict.fromkeys(self.groups[sub], float(v)))
            elif kind == "base_mass":
                d.mass_add[self.base_body] = float(v)
            elif kind == "base_com":
                com[AXES.index(sub)] = float(v)
                d.com_offset[self.base_body] = list(com)
            elif kind == "friction":
                d.friction = float(v)
            elif kind == "substep_delay":
                d.substep_delay = int(round(v))
            else:
                d.action_delay = int(round(v))
        return d


def _matches(pattern: str, names: tuple[str, ...]) -> bool:
    """Whether ``pattern`` matches a joint of ``names`` (:func:`deploy.gap.per_joint`'s rule)."""
    try:
        per_joint({pattern: 0.0}, names)
    except ValueError:
        return False
    return True


class PopulationReplay:
    """Scores candidate dynamics on the training windows: every candidate in one batched replay."""

    def __init__(self, cfg: SysIDConfig, motions: list[Motion], shaping: TargetShaping) -> None:
        self.cfg, self.motions, self.shaping = cfg, motions, shaping
        self._libs: dict[int, MotionLib] = {}

    def sim_config(self, n: int) -> SimConfig:
        """The replay simulator's config for n envs."""
        c = self.cfg
        return SimConfig(backend=c.sim, variant=c.variant, num_envs=n, threads=c.threads, device=c.device,
                         model=c.physics)  # fmt: skip

    def _lib(self, k: int) -> MotionLib:
        """The training episodes repeated k times (candidate c's windows come c-th, in one block)."""
        if k not in self._libs:
            self._libs = {k: MotionLib(self.motions * k, spec=self.cfg.variant, device=self.cfg.device)}
        return self._libs[k]

    def score(self, candidates: list[SimDynamics]) -> list[dict[str, float]]:
        """Per candidate: the mean replay metrics over the training windows plus ``loss`` (the weighted sum)."""
        k = len(candidates)

        def make_sim(n: int) -> Simulator:
            w = n // k
            sim = make_simulator(self.sim_config(n))
            for c, dyn in enumerate(candidates):
                apply_dynamics(sim, dyn, torch.arange(c * w, (c + 1) * w))
            return sim

        r = replay(self._lib(k), make_sim, self.shaping, self.cfg.horizon_s, self.cfg.stride_s)
        w = r["windows"] // k
        out = []
        for c in range(k):
            m = {key: float(np.mean(r["window_metrics"][key][c * w : (c + 1) * w])) for key in METRIC_KEYS}
            m["loss"] = float(sum(wt * m[key] for key, wt in self.cfg.loss.items()))
            out.append(m)
        return out


def _search_key(cfg: SysIDConfig, files: list[Path]) -> dict[str, Any]:
    """The settings a saved state must share to be resumed."""
    keys = ("method", "groups", "params", "ranges", "grid", "grid_points", "base_body", "population", "sigma0",
            "horizon_s", "stride_s", "loss", "held_out", "seed", "variant", "sim", "physics", "shaping")  # fmt: skip
    d = to_dict(cfg)
    return {"files": [str(f) for f in files], **{k: d[k] for k in keys}}


class SysID:
    """One `asap sysid` run: split, optimiser state (resumable), scoring, artifacts."""

    def __init__(self, cfg: SysIDConfig) -> None:
        if cfg.method not in METHODS:
            raise ValueError(f"unknown sysid method {cfg.method!r}; choose one of {', '.join(METHODS)}")
        unknown = sorted(set(cfg.loss) - set(METRIC_KEYS))
        if unknown or not cfg.loss:
            raise ValueError(f"loss weights must name some of {', '.join(METRIC_KEYS)}, got {sorted(cfg.loss)}")
        if cfg.population < 1:
            raise ValueError(f"population must be >= 1, got {cfg.population}")
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.files = gather_logs(cfg.motions)
        motions, logged_shaping = load_logs(self.files)
        self.shaping = replay_shaping(logged_shaping, cfg.shaping)
        self.train_idx, self.held_idx = split_episodes(len(motions), cfg.held_out, cfg.seed)
        self.space = SearchSpace.of(cfg)
        self.scorer = PopulationReplay(cfg, [motions[i] for i in self.train_idx], self.shaping)
        self.key = _search_key(cfg, self.files)
        self.state: dict[str, Any] = {}

    # ---------------------------------------------------------------------------------------------- state
    @property
    def state_path(self) -> Path:
        """Where the optimiser's state is saved."""
        return self.out / STATE_FILE

    def _load_state(self) -> bool:
        if not (self.cfg.resume and self.state_path.is_file()):
            return False
        with open(self.state_path, "rb") as f:
            st = pickle.load(f)
        if st.get("key") != self.key:
            raise ValueError(f"{self.state_path} comes from other sysid settings or logs: use another --out, or "
                             "resume=false to start over")  # fmt: skip
        self.state = st
        return True

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(self.state, f)
        tmp.replace(self.state_path)

    def _record(self, values: list[dict[str, float]], scores: list[dict[str, float]]) -> dict[str, float]:
        """Add scored candidates to the state; returns the generation's summary row."""
        st = self.state
        for v, s in zip(values, scores, strict=True):
            st["evaluated"].append({"values": v, **s})
            if s["loss"] < st["best"]["loss"]:
                st["best"] = {"values": v, **s}
        losses = [s["loss"] for s in scores]
        row = {"generation": st["generation"], "best_loss": float(min(losses)), "mean_loss": float(np.mean(losses)),
               "best_so_far": st["best"]["loss"], "time_s": st["elapsed_s"]}  # fmt: skip
        st["history"].append(row)
        st["generation"] += 1
        return row

    # ---------------------------------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        """Optimise (or continue), then write the artifacts; returns the summary (also ``sysid.json``)."""
        from asap.utils.progress import progress_bar

        torch.set_num_threads(max(1, self.cfg.torch_threads))
        self.out.mkdir(parents=True, exist_ok=True)
        write_split(self.out, self.files, self.train_idx, self.held_idx)
        save_config(self.cfg, self.out / "config.yaml")
        resumed = self._load_state()
        if not resumed:
            self._start()
        c, st = self.cfg, self.state
        total = c.generations if c.method == "cma" else math.ceil(len(st["grid"]) / c.population)
        if resumed:
            print(f"resumed {self.state_path} at generation {st['generation']}", flush=True)
        bar = progress_bar(total=total, initial=min(st["generation"], total), desc=f"sysid {c.method}", unit="gen")
        try:
            while st["generation"] < total and not (c.method == "cma" and st["es"].stop()):
                t0 = time.time()
                if c.method == "cma":
                    xs = st["es"].ask()
                    values = [self.space.from_unit(x) for x in xs]
                else:
                    g = st["generation"] * c.population
                    values = st["grid"][g : g + c.population]
                scores = self.scorer.score([self.space.dynamics(v) for v in values])
                if c.method == "cma":
                    st["es"].tell(xs, [s["loss"] for s in scores])
                st["elapsed_s"] += time.time() - t0
                row = self._record(values, scores)
                self._save_state()
                bar.update(1)
                bar.set_postfix(best=f"{row['best_so_far']:.2f}", gen=f"{row['best_loss']:.2f}")
        finally:
            bar.close()
        return self._finish()

    def _start(self) -> None:
        """A fresh state: score the nominal simulator, then set up CMA-ES or the grid."""
        import cma

        c = self.cfg
        probe = make_simulator(self.scorer.sim_config(1))
        nominal = self.space.nominal(probe)
        probe.close()
        t0 = time.time()
        nominal_score = self.scorer.score([SimDynamics()])[0]
        self.state = {"key": self.key, "generation": 0, "evaluated": [], "history": [], "es": None, "grid": None,
                      "nominal": {"values": nominal, **nominal_score}, "best": {"values": nominal, **nominal_score},
                      "elapsed_s": time.time() - t0}  # fmt: skip
        if c.method == "cma":
            opts = {"bounds": [0.0, 1.0], "popsize": c.population, "seed": c.seed + 1, "verbose": -9}  # seed 0: clock
            self.state["es"] = cma.CMAEvolutionStrategy(self.space.to_unit(nominal).tolist(), c.sigma0, opts)
        else:
            self.state["grid"] = self.space.grid(c)
        self._save_state()

    def _finish(self) -> dict[str, Any]:
        """dynamics.yaml of the best candidate, the held-out open-loop report and sysid.json."""
        c, st = self.cfg, self.state
        best, nominal = st["best"], st["nominal"]
        n_train = len(self.train_idx)
        desc = (f"asap sysid ({c.method}, {len(st['evaluated'])} candidates) on {n_train} training episode(s): "
                f"replay loss {best['loss']:.2f} (nominal simulator {nominal['loss']:.2f})")  # fmt: skip
        dyn = self.space.dynamics(best["values"], description=desc)
        path = save_dynamics(dyn, self.out / "dynamics.yaml")

        idx = self.held_idx or self.train_idx
        which = "held-out" if self.held_idx else "training (only one episode was given)"
        rep = openloop_eval(
            [str(self.files[i]) for i in idx], self.out, gap=c.gap, horizons=c.horizons_s, sim=c.sim,
            variant=c.variant, shaping=self.shaping, stride_s=c.report_stride_s, physics=c.physics,
            threads=c.threads, device=c.device, methods={"SysID": sysid_replay(dyn)},
            title=f"Open-loop replay error on {len(idx)} {which} episode(s)",
            files=("openloop.json", "openloop.md", "openloop.png"),
        )  # fmt: skip
        summary = {"dynamics": str(path), "method": c.method, "values": best["values"],
                   "train": {"best": {k: best[k] for k in (*METRIC_KEYS, "loss")},
                             "nominal": {k: nominal[k] for k in (*METRIC_KEYS, "loss")}},
                   "generations": st["generation"], "candidates": len(st["evaluated"]), "time_s": st["elapsed_s"],
                   "episodes": {"train": n_train, "held_out": len(self.held_idx)}, "openloop": rep["metrics"],
                   "gap": rep["gap"], "history": st["history"]}  # fmt: skip
        (self.out / "sysid.json").write_text(json.dumps(summary, indent=1))
        return summary


def sysid_replay(dyn: SimDynamics) -> ReplayFn:
    """The open-loop report's SysID row: :func:`asap.eval.openloop.replay` in the simulator with the identified
    dynamics ``dyn`` applied to every env."""

    def row(logs: MotionLib, make_sim: Any, shaping: TargetShaping, h: float, s: float) -> dict[str, Any]:
        return replay(logs, lambda n: apply_dynamics(make_sim(n), dyn), shaping, h, s)

    return row


def sysid(cfg: SysIDConfig) -> dict[str, Any]:
    """Run `asap sysid` (see the module docstring); returns the summary written to ``out_dir/sysid.json``."""
    return SysID(cfg).run()
