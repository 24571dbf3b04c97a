"""`asap train-dynamics`: train the DeltaDynamics baseline (:mod:`asap.delta.delta_dynamics`) on logged episodes and
write its open-loop report beside OpenLoop (and Oracle when the logs' gap is known).

**Data.** Every training iteration replays random windows of K steps of the training episodes (uniform over all
(episode, start frame) pairs with K logged successors; batches of ``num_envs`` until ``min_steps`` steps) exactly as
the open-loop evaluation does (:class:`envs.delta.env.DeltaEnv`: the logged state at the start frame, the logged
actions shaped as the runtime shaped them), in the simulator wrapped by
:class:`asap.delta.delta_dynamics.DeltaDynamicsSimulator` with the model being trained: after every step the
model's residual corrects the simulator state, and the next step starts from the corrected state. Each step k
records the corrected state ŝ_k before it, the action a_k, the simulator's next state sim_{k+1} = sim(ŝ_k, a_k)
before the correction, and the logged s_{k+1}.

**Loss and gradients.** The simulator is not differentiable, so no gradient crosses a simulator step: the
correction of step k reaches step k+1 only through the simulator (as the state it starts from), and ŝ_k enters the
model as data. The loss of a window is the K-step loss :func:`asap.delta.delta_dynamics.rollout_loss`: the mean over
*all* K steps of the squared error of ``sim_{k+1} + f(ŝ_k, a_k)`` against the logged s_{k+1}, each step's error in
units of the plain simulator's RMS error at that step (``step_scale``, measured once on random windows: a model as
good as OpenLoop scores about 1 at every K, so the progress bar's ``rollout_loss`` reads directly against OpenLoop,
and the late steps' centimetre drifts do not drown the first steps); its gradient reaches every step's prediction
f(ŝ_k, a_k). The first step of every window starts from a logged state (a one-step, teacher-forced sample); the
later ones from the states the model's own corrections lead to, with no teacher forcing. Because each step's loss
depends on the parameters only through that step's prediction, the recorded steps of a rollout serve ``epochs``
passes of Adam mini-batches of whole windows (all K steps of a window in one batch); the first pass's gradient is
exactly the rollout's, later passes reuse its states as PPO reuses its rollouts.

**What the later steps teach, measured.** At its own states ŝ_k the model is asked for logged_{k+1} ⊖ sim(ŝ_k),
which holds, beside the gap, the simulator's response to the deviation ŝ_k − s_k — stiff (PD gains, contacts) and
invisible to the model, which does not see the log. On synthetic logs with a known ankle Kp gap a model fitted at
K = 1 (one-step normalised loss 0.11) replays 16 and 50 steps at 0.22 and 0.32 of OpenLoop's loss; 10 further
iterations at K = 8 and lr 1e-3 made that 2.9 and 4.7 (lr 1e-4: 0.28 and 0.32), and a fixed batch of K = 4 windows
could hardly be fitted (0.65 → 0.63 in 5 epochs) while the closed replay swung between 0.26 and 0.88 from one epoch to
the next. Hence the schedule: a long K = 1 stage, short later stages with the learning rate divided by K
(``lr_per_k``), and the residual bounded per step (:attr:`DeltaDynamicsMeta.bound`; the first real-log run without
bound and per-step scale diverged at K = 32). With this schedule, 2 minutes on the demo's 24 logged ankle_weak
episodes (18 trained, 6 held out) replay the held-out 1 s windows at E_g-mpjpe 7.4 mm (OpenLoop 69.6, Oracle 5.0).

**Curriculum.** K follows ``curriculum`` (default 1 → 2 → 4 → 8 → 16 → 32 → 50 steps), ``stage_iterations``
iterations per stage; the last stage runs until the budget ends. **Normalisation** (fresh runs): the input's mean
and spread over a one-step replay of every training frame, and the residual scale = the spread of the one-step
residuals (logged next state minus simulated next state), floored per term at ``scale_floor`` times the term's RMS
spread; stored with the weights.

Artifacts in ``out_dir``: ``model_<it>.pt`` (checkpoints: model, Adam, iteration, history, sampler state;
``--resume``), ``dynamics_model.pt`` + ``dynamics_model.json`` (the frozen model: variant, layouts, normalisation,
training summary), ``openloop.{json,md,png}`` (held-out episodes; rows OpenLoop, Oracle when known, DeltaDynamics),
``split.json``, ``config.yaml``, ``summary.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from asap.config import save_config, to_dict
from asap.control import TargetShaping
from asap.delta.delta_dynamics import (
    RESIDUAL_TERMS,
    DeltaDynamicsMeta,
    DeltaDynamicsModel,
    DeltaDynamicsSimulator,
    apply_residual,
    features,
    motion_state_vector,
    rollout_loss,
    state_difference,
    term_slices,
)
from asap.delta.logs import gather_logs, load_logs, replay_shaping, write_split
from asap.delta.train import split_episodes
from asap.eval.openloop import ReplayFn, openloop_eval, replay, report_windows
from asap.motion.motionlib import MotionLib
from asap.robot.model import ModelOptions
from asap.sim.base import SimConfig, make_simulator
from envs.delta.config import DeltaEnvConfig
from envs.delta.env import DeltaEnv


@dataclass
class DeltaDynamicsConfig:
    """`asap train-dynamics`: the DeltaDynamics baseline on the open-loop replay of logged episodes."""

    motions: list[str] = field(default_factory=list)
    """Logged episodes: Motion files with ``action`` or folders of them (`asap collect` output)."""
    out_dir: str = "run/dynamics"
    """Run directory (checkpoints, dynamics_model.pt, the open-loop report)."""
    resume: str | None = None
    """A checkpoint (``model_<it>.pt``) of this run to continue from."""
    held_out: float = 0.25
    """Share of episodes (whole files) kept out of training for the report."""
    gap: str | None = None
    """Reality-gap profile the logs came from, when known (adds the Oracle row; default: what the logs record)."""
    shaping: TargetShaping = field(default_factory=TargetShaping)
    """How the runtime shaped the logged actions into targets (logs that record theirs must agree)."""
    sim: str = "mujoco"
    """Simulator backend of the replay (the policy's training simulator)."""
    num_envs: int = 128
    """Windows replayed in parallel (the simulator's batch size)."""
    min_steps: int = 1024
    """Recorded steps per iteration at least: windows shorter than min_steps / num_envs are replayed in several
    batches, so every stage's Adam mini-batches hold a similar number of steps."""
    threads: int = 2
    """Native simulator threads."""
    device: str = "cpu"
    """Torch device."""
    variant: str = "g1_23dof"
    """Robot variant."""
    seed: int = 0
    """Seed of torch, the split and the window sampler."""
    torch_threads: int = 1
    """torch threads (1 is fastest for this small network on a busy CPU)."""
    physics: ModelOptions = field(default_factory=ModelOptions)
    """Physics options of the replay simulator (must be the policy's training physics)."""
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    """MLP hidden widths, ReLU (the reference: 256, 256)."""
    lr: float = 1e-3
    """Adam learning rate (the reference's)."""
    epochs: int = 4
    """Passes of Adam over each rollout's recorded steps."""
    mini_batches: int = 8
    """Mini-batches per pass (each holds whole windows: all K steps of num_envs / mini_batches windows)."""
    grad_clip: float = 1.0
    """Gradient norm clip per Adam step (0: off)."""
    bound: float = 10.0
    """Largest residual per step in one-step spreads (:class:`asap.delta.delta_dynamics.DeltaDynamicsMeta`)."""
    curriculum: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 50])
    """Window length K (control steps) of each stage; capped by the longest training episode."""
    stage_iterations: list[int] = field(default_factory=lambda: [100, 10])
    """Iterations of each curriculum stage (a shorter list repeats its last entry; the last stage runs until the
    budget ends)."""
    lr_per_k: bool = True
    """Divide the learning rate by K in each stage (the later steps' targets are noisy; module docstring)."""
    scale_floor: float = 0.1
    """Residual scale floor per dimension, as a fraction of its term's RMS spread (keeps near-constant dimensions
    from dominating the normalised loss)."""
    max_iterations: int = 1000000
    """Iteration budget."""
    max_time_s: float = 120.0
    """Training time budget in seconds (0: no limit); the report comes after."""
    save_interval: int = 50
    """Iterations between checkpoints (one is always written at the end)."""
    progress: bool = True
    """Show the tqdm progress bar."""
    horizons_s: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])
    """Open-loop report horizons (the paper's Table III)."""
    report_stride_s: float = 0.25
    """Report windows start every this many seconds of each held-out episode."""


class Steps(NamedTuple):
    """Recorded steps of replayed windows, each (K, windows, ·)."""

    state: torch.Tensor
    """(K, B, 13 + 2J) the corrected state before each step (the logged start state at k = 0)."""
    action: torch.Tensor
    """(K, B, J) the applied action of each step (policy-action units)."""
    sim: torch.Tensor
    """(K, B, 13 + 2J) the simulator's state after each step, before the correction."""
    logged: torch.Tensor
    """(K, B, 13 + 2J) the logged state after each step."""


def stage_horizon(cfg: DeltaDynamicsConfig, iteration: int) -> int:
    """K (steps) of the curriculum stage of ``iteration`` (0-based)."""
    if not cfg.curriculum:
        raise ValueError("curriculum must list at least one window length (steps)")
    lengths = [max(1, int(n)) for n in cfg.stage_iterations] or [1]
    stage, end = 0, lengths[0]
    while iteration >= end and stage < len(cfg.curriculum) - 1:
        stage += 1
        end += lengths[min(stage, len(lengths) - 1)]
    return max(1, int(cfg.curriculum[stage]))


def dynamics_replay(model: DeltaDynamicsModel) -> ReplayFn:
    """The open-loop report's row for a DeltaDynamics model: :func:`asap.eval.openloop.replay` in the simulator
    wrapped by :class:`DeltaDynamicsSimulator`."""

    def row(logs: MotionLib, make_sim: Any, shaping: TargetShaping, horizon_s: float, stride_s: float) -> dict:
        return replay(logs, lambda n: DeltaDynamicsSimulator(make_sim(n), model), shaping, horizon_s, stride_s)  # type: ignore[arg-type]

    return row


class DeltaDynamicsTrainer:
    """Builds the replay simulator (wrapped with the model being trained), trains, writes the model and report."""

    def __init__(self, cfg: DeltaDynamicsConfig) -> None:
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(max(1, cfg.torch_threads))
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.files = gather_logs(cfg.motions)
        motions, logged_shaping = load_logs(self.files)
        self.shaping = replay_shaping(logged_shaping, cfg.shaping)
        self.train_idx, self.held_idx = split_episodes(len(motions), cfg.held_out, cfg.seed)
        write_split(self.out, self.files, self.train_idx, self.held_idx)
        self.lib = MotionLib([motions[i] for i in self.train_idx], spec=cfg.variant, device=cfg.device)
        meta = DeltaDynamicsMeta(cfg.variant, tuple(cfg.hidden_dims), bound=cfg.bound)
        self.model = DeltaDynamicsModel(meta).to(cfg.device)
        self.j = self.model.num_joints
        sim = make_simulator(SimConfig(backend=cfg.sim, variant=cfg.variant, num_envs=cfg.num_envs,
                                       threads=cfg.threads, device=cfg.device, model=cfg.physics))  # fmt: skip
        self.sim = DeltaDynamicsSimulator(sim, self.model)
        self.dt = float(sim.control_dt)
        self.longest = int(self.lib.motion_num_frames.max()) - 1
        """Most steps any training episode has (its frames minus one)."""
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self._envs: dict[int, DeltaEnv] = {}
        self._windows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.iteration = 0
        self.train_time = 0.0
        self.history: list[dict[str, float]] = []
        self.step_scale = torch.ones(1, self.model.out_scale.numel(), device=cfg.device)
        """(K_max, 12 + 2J) loss scale of each step of a window: the plain simulator's error spread at that step."""
        save_config(cfg, self.out / "config.yaml")
        if cfg.resume:
            self.load(cfg.resume)
        else:
            self.fit_normalisation()
            self.fit_step_scale()

    # ------------------------------------------------------------------------------------------ replay
    def _env(self, k: int) -> DeltaEnv:
        if k not in self._envs:
            env = DeltaEnv(DeltaEnvConfig(window_s=k * self.dt, seed=self.cfg.seed), self.sim, self.lib, self.shaping)  # type: ignore[arg-type]
            env.eval_mode = True
            self._envs[k] = env
        return self._envs[k]

    def windows(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(episode ids, start frames) of every training window with k logged successors."""
        if k not in self._windows:
            self._windows[k] = report_windows(self.lib, k, 1)
        return self._windows[k]

    def horizon(self, iteration: int) -> int:
        """The curriculum's K at ``iteration``, capped by the longest training episode."""
        return max(1, min(stage_horizon(self.cfg, iteration), self.longest))

    @torch.no_grad()
    def rollout(self, k: int, m: torch.Tensor, f0: torch.Tensor) -> Steps:
        """Replay windows (m, f0) (num_envs of each) for k steps with the current model in the loop; tensors
        (k, N, ·)."""
        env = self._env(k)
        env.reset_to(m, f0)
        zero = torch.zeros(env.num_envs, env.num_actions, device=env.device)
        rec: list[list[torch.Tensor]] = [[], [], [], []]
        for step in range(k):
            env.step(zero)
            w = self.sim
            for r, v in zip(rec, (w.last_state, w.last_action, w.last_sim_state), strict=False):
                r.append(v.clone())
            rec[3].append(motion_state_vector(self.lib.frame_state(m, f0 + step + 1)))
        return Steps(*(torch.stack(r) for r in rec))

    def sample(self, k: int) -> Steps:
        """One iteration's data: :meth:`rollout` of random windows of k steps, batches of ``num_envs`` until at least
        ``min_steps`` steps are recorded; tensors (k, windows, ·)."""
        m_all, f_all = self.windows(k)
        n = self.sim.num_envs
        parts = []
        for _ in range(max(1, -(-self.cfg.min_steps // (n * k)))):
            pick = torch.randint(0, len(m_all), (n,), generator=self.gen)
            parts.append(self.rollout(k, m_all[pick], f_all[pick]))
        return Steps(*(torch.cat(t, dim=1) for t in zip(*parts, strict=True)))

    @torch.no_grad()
    def fit_normalisation(self) -> None:
        """Input mean/spread and residual scale from a one-step replay of every training frame (module docstring)."""
        m_all, f_all = self.windows(1)
        n = self.sim.num_envs
        xs, res = [], []
        for a in range(0, len(m_all), n):
            m, f0 = m_all[a : a + n], f_all[a : a + n]
            used = len(m)
            pad = n - used
            m, f0 = torch.cat([m, m[:1].repeat(pad)]), torch.cat([f0, f0[:1].repeat(pad)])
            st = self.rollout(1, m, f0)  # the untrained model outputs zero: the plain simulator
            xs.append(features(st.state[0, :used], st.action[0, :used], self.j))
            res.append(state_difference(st.logged[0, :used], st.sim[0, :used], self.j))
        x, r = torch.cat(xs), torch.cat(res)
        in_std = x.std(dim=0) if len(x) > 1 else torch.ones_like(x[0])
        in_std = torch.where(in_std > 1e-6, in_std, torch.ones_like(in_std))
        spread = r.std(dim=0) if len(r) > 1 else torch.ones_like(r[0])
        self.model.set_normalisation(x.mean(dim=0), in_std, self._floored(spread))

    def _floored(self, spread: torch.Tensor) -> torch.Tensor:
        """``spread`` (..., 12 + 2J) floored per residual term at ``scale_floor`` times the term's RMS spread."""
        out = torch.empty_like(spread)
        for a, b in term_slices(RESIDUAL_TERMS, self.j).values():
            rms = spread[..., a:b].square().mean(dim=-1, keepdim=True).sqrt()
            out[..., a:b] = torch.maximum(spread[..., a:b], (rms * self.cfg.scale_floor).clamp(min=1e-8))
        return out

    @torch.no_grad()
    def fit_step_scale(self) -> None:
        """Loss scale per step: the RMS error of the plain simulator (the untrained model) after 1..K_max steps over
        ``num_envs`` random windows, never below the one-step scale (module docstring)."""
        k = self.horizon(10**9)
        m_all, f_all = self.windows(k)
        pick = torch.randint(0, len(m_all), (self.sim.num_envs,), generator=self.gen)
        st = self.rollout(k, m_all[pick], f_all[pick])
        rms = state_difference(st.logged, st.sim, self.j).square().mean(dim=1).sqrt()
        self.step_scale = torch.maximum(self._floored(rms), self.model.out_scale)

    def loss(self, st: Steps) -> torch.Tensor:
        """The K-step loss (:func:`asap.delta.delta_dynamics.rollout_loss`) of recorded steps (K, B, ·) with the
        current model, each step's error in units of the plain simulator's error spread at that step."""
        corrected = apply_residual(st.sim, self.model(features(st.state, st.action, self.j)), self.j)
        return rollout_loss(corrected, st.logged, self.step_scale[: st.state.shape[0], None, :], self.j)

    # ---------------------------------------------------------------------------------------- training
    def update(self, st: Steps) -> float:
        """``epochs`` passes of Adam over mini-batches of whole windows; returns the mean K-step loss."""
        cfg, n = self.cfg, st.state.shape[1]
        size = max(1, n // max(1, cfg.mini_batches))
        losses = []
        for _ in range(max(1, cfg.epochs)):
            perm = torch.randperm(n, generator=self.gen).to(st.state.device)
            for a in range(0, n, size):
                b = perm[a : a + size]
                loss = self.loss(Steps(*(t[:, b] for t in st)))
                self.opt.zero_grad()
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.opt.step()
                losses.append(float(loss.detach()))
        return sum(losses) / len(losses)

    def train(self) -> Path:
        """Iterate until ``max_iterations`` or ``max_time_s``; returns the last checkpoint."""
        from asap.utils.progress import progress_bar

        cfg = self.cfg
        start = self.iteration
        end = start + cfg.max_iterations
        t_begin = time.time() - self.train_time
        timed = cfg.max_time_s > 0
        bar = progress_bar(total=int(cfg.max_time_s) if timed else cfg.max_iterations,
                           initial=int(self.train_time) if timed else 0, unit="s" if timed else "it",
                           desc="train-dynamics", disable=not cfg.progress)  # fmt: skip
        try:
            while self.iteration < end and not (timed and self.train_time >= cfg.max_time_s):
                k = self.horizon(self.iteration)
                for group in self.opt.param_groups:
                    group["lr"] = cfg.lr / (k if cfg.lr_per_k else 1)
                st = self.sample(k)
                with torch.no_grad():  # the error of the rollout itself (the model before this update)
                    err = self.loss(st)
                loss = self.update(st)
                before = self.train_time
                self.train_time = time.time() - t_begin
                self.history.append({"iteration": self.iteration, "time_s": self.train_time, "K": k,
                                     "rollout_loss": float(err), "train_loss": loss})  # fmt: skip
                bar.update(int(self.train_time) - int(before) if timed else 1)
                bar.set_postfix(K=k, rollout_loss=f"{float(err):.3f}", train_loss=f"{loss:.3f}")
                self.iteration += 1
                if cfg.save_interval > 0 and self.iteration % cfg.save_interval == 0:
                    self.save(self.out / f"model_{self.iteration}.pt")
        finally:
            bar.close()
        return self.save(self.out / f"model_{self.iteration}.pt")

    # ------------------------------------------------------------------------------------- checkpoints
    def save(self, path: Path) -> Path:
        """Checkpoint: model (with its normalisation), Adam, iteration, time, history, sampler state."""
        torch.save({"model": self.model.state_dict(), "dynamics_meta": self.model.meta.to_dict(),
                    "optimizer": self.opt.state_dict(), "iteration": self.iteration, "train_time_s": self.train_time,
                    "history": self.history, "generator": self.gen.get_state(), "config": to_dict(self.cfg),
                    "step_scale": self.step_scale},
                   str(path))  # fmt: skip
        return path

    def load(self, path: str | Path) -> None:
        """Continue from a checkpoint written by :meth:`save`."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such checkpoint to resume from")
        ck = torch.load(str(p), map_location=self.cfg.device, weights_only=False)
        if not isinstance(ck, dict) or "optimizer" not in ck or "dynamics_meta" not in ck:
            raise ValueError(f"{p}: not an `asap train-dynamics` checkpoint (model_<it>.pt)")
        if DeltaDynamicsMeta.from_dict(ck["dynamics_meta"]) != self.model.meta:
            raise ValueError(f"{p}: a model of another variant or size than this config's ({self.model.meta})")
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.iteration = int(ck["iteration"])
        self.train_time = float(ck["train_time_s"])
        self.history = list(ck["history"])
        self.gen.set_state(ck["generator"])
        self.step_scale = ck["step_scale"].to(self.cfg.device)
        print(f"resumed from {p} at iteration {self.iteration}", flush=True)

    def export(self, checkpoint: Path) -> Path:
        """Write ``dynamics_model.pt`` + ``.json`` (frozen model, layouts, normalisation, training summary)."""
        last = self.history[-1] if self.history else {}
        extra = {"checkpoint": str(checkpoint), "train_time_s": self.train_time, "iterations": self.iteration,
                 "final_K": last.get("K"), "final_rollout_loss": last.get("rollout_loss"),
                 "trained_on": [self.files[i].stem for i in self.train_idx]}  # fmt: skip
        return self.model.save(self.out / "dynamics_model.pt", extra=extra)

    def report(self, model_path: Path) -> dict[str, Any]:
        """Open-loop table on the held-out episodes (the training ones when none is held out): OpenLoop, Oracle when
        the gap is known, DeltaDynamics."""
        c = self.cfg
        idx = self.held_idx or self.train_idx
        which = "held-out" if self.held_idx else "training (none held out)"
        frozen = DeltaDynamicsModel.load(model_path)
        return openloop_eval(
            [str(self.files[i]) for i in idx], self.out, gap=c.gap, horizons=c.horizons_s, sim=c.sim,
            variant=c.variant, shaping=self.shaping, stride_s=c.report_stride_s, physics=c.physics,
            threads=c.threads, device=c.device, methods={"DeltaDynamics": dynamics_replay(frozen)},
            title=f"Open-loop replay error on {len(idx)} {which} episode(s)",
            files=("openloop.json", "openloop.md", "openloop.png"),
        )  # fmt: skip

    def close(self) -> None:
        """Release the simulator."""
        self.sim.close()


def train_dynamics(cfg: DeltaDynamicsConfig) -> dict[str, Any]:
    """Train the DeltaDynamics model, export ``dynamics_model.pt`` and write the open-loop report; returns a summary
    (also in ``out_dir/summary.json``)."""
    tr = DeltaDynamicsTrainer(cfg)
    try:
        ck = tr.train()
        path = tr.export(ck)
    finally:
        tr.close()
    rep = tr.report(path)
    episodes = {"train": len(tr.train_idx), "held_out": len(tr.held_idx)}
    out = {"dynamics_model": str(path), "checkpoint": str(ck), "train_time_s": tr.train_time,
           "iterations": tr.iteration, "final_K": tr.history[-1]["K"] if tr.history else None,
           "openloop": rep["metrics"], "episodes": episodes}  # fmt: skip
    (tr.out / "summary.json").write_text(json.dumps(out, indent=1))
    return out
