"""Data-parallel PPO over ``torch.distributed``: one process (rank) per GPU or per group of CPU cores.

Every rank builds its own simulator and envs (seed ``seed + rank``, its share of the cores), collects its own
rollouts and runs the same PPO update; rsl-rl's multi-GPU path (``multi_gpu_cfg``: ``PPO.reduce_parameters``
averages the gradients of every mini-batch, ``broadcast_parameters`` copies rank 0's networks, the adaptive-KL
learning rate is averaged and broadcast, observation normalisers reduce their statistics) keeps the networks and
optimisers identical on every rank. Backend: NCCL on CUDA, Gloo on CPU. Rank 0 alone logs, saves, evaluates and
exports; every rank loads the checkpoint when resuming.

Launching: ``asap pretrain|finetune|train-delta --nproc N`` starts N local ranks through torch's elastic launcher
(what ``torchrun --standalone`` runs); the same command under ``torchrun --nproc_per_node N [--nnodes M
--rdzv-endpoint HOST:PORT ...]`` reads ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` from the environment instead.
``num_envs`` is per rank: the PPO batch of one iteration is ``world_size * num_envs * num_steps_per_env``.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import torch
import torch.distributed as tdist
from rsl_rl.runners import OnPolicyRunner

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """This process' place in the job (world_size 1 when not distributed)."""

    rank: int = 0
    """Global rank (0: the main process, which logs, saves and exports)."""
    local_rank: int = 0
    """Rank on this node (selects the GPU: ``cuda:<local_rank>``)."""
    world_size: int = 1
    """Number of ranks in the job."""
    local_world_size: int = 1
    """Number of ranks on this node (they share its CPU cores)."""

    @property
    def distributed(self) -> bool:
        """Whether more than one rank trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0."""
        return self.rank == 0


def info() -> DistInfo:
    """The rank layout from torchrun's environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
    ``LOCAL_WORLD_SIZE``); a single process when ``WORLD_SIZE`` is unset or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(rank=int(os.environ.get("RANK", "0")), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                    world_size=world, local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))  # fmt: skip


def rank_device(device: str, d: DistInfo) -> str:
    """The torch device of this rank: ``cuda`` / ``cuda:K`` become ``cuda:<local_rank>`` in a distributed job.

    Raises ``RuntimeError`` (one line, naming the fix) when CUDA is asked for and torch has none.
    """
    if not str(device).startswith("cuda"):
        return str(device)
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device} but torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False): "
            "set device=cpu, or install a CUDA build of torch on a machine with a GPU"
        )
    if not d.distributed:
        return str(device)
    if d.local_rank >= torch.cuda.device_count():
        raise RuntimeError(f"local rank {d.local_rank} has no GPU ({torch.cuda.device_count()} visible): start at "
                           "most one rank per GPU (--nproc / --nproc_per_node)")  # fmt: skip
    return f"cuda:{d.local_rank}"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def rank_threads(requested: int, d: DistInfo) -> int:
    """Threads of one rank: ``requested`` (0: all its cores), at most ``cores // ranks on this node`` (>= 1)."""
    share = max(1, usable_cores() // max(1, d.local_world_size))
    return share if requested <= 0 else min(int(requested), share)


def setup(device: str) -> DistInfo:
    """Join the process group (NCCL for a CUDA device, Gloo otherwise) when launched with several ranks.

    Idempotent: a second call returns the same layout. Sets the current CUDA device to ``cuda:<local_rank>``.
    """
    d = info()
    if not d.distributed or tdist.is_initialized():
        return d
    dev = rank_device(device, d)
    backend = "nccl" if dev.startswith("cuda") else "gloo"
    if dev.startswith("cuda"):
        torch.cuda.set_device(torch.device(dev))
    if not tdist.is_available():
        raise RuntimeError("this torch build has no torch.distributed: install the standard torch wheel")
    tdist.init_process_group(backend=backend, rank=d.rank, world_size=d.world_size)
    return d


def barrier() -> None:
    """Wait until every rank gets here (no-op when not distributed). The stages call it last, after rank 0 has
    written the run's files, so that no rank returns before the checkpoint a next stage reads exists."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()


def teardown() -> None:
    """Wait for every rank, then leave the process group (no-op when not distributed). Once per process, at its
    end: a process group cannot be joined again on the same rendezvous."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()


class DistributedOnPolicyRunner(OnPolicyRunner):
    """rsl-rl's runner on an already joined process group of any backend (rsl-rl's own set-up assumes NCCL and
    ``cuda:<local_rank>``; Gloo on CPU is the same algorithm). The algorithm gets rsl-rl's ``multi_gpu`` config."""

    def _configure_multi_gpu(self) -> None:
        if not (tdist.is_available() and tdist.is_initialized()) or tdist.get_world_size() <= 1:
            super()._configure_multi_gpu()
            return
        d = info()
        self.gpu_world_size = tdist.get_world_size()
        self.gpu_global_rank = tdist.get_rank()
        self.gpu_local_rank = d.local_rank
        self.is_distributed = True
        self.cfg["multi_gpu"] = {"global_rank": self.gpu_global_rank, "local_rank": self.gpu_local_rank,
                                 "world_size": self.gpu_world_size}  # fmt: skip


def make_runner(env: Any, train_cfg: dict[str, Any], log_dir: str | None, device: str) -> OnPolicyRunner:
    """rsl-rl's ``OnPolicyRunner`` (single process) or :class:`DistributedOnPolicyRunner` (process group joined)."""
    cls = DistributedOnPolicyRunner if tdist.is_available() and tdist.is_initialized() else OnPolicyRunner
    return cls(env, train_cfg, log_dir=log_dir, device=device)


def sync_parameters(alg: Any) -> None:
    """Copy rank 0's networks (and normaliser statistics) to every rank (rsl-rl's ``broadcast_parameters``)."""
    if getattr(alg, "is_multi_gpu", False):
        alg.broadcast_parameters()


def agree(value: int, device: str = "cpu") -> int:
    """Rank 0's ``value`` on every rank (stop decisions: the ranks' clocks and evaluations differ)."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.long, device=device)
    tdist.broadcast(t, src=0)
    return int(t.item())


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``x`` over all ranks (``x`` itself when not distributed)."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return x
    y = x.clone()
    tdist.all_reduce(y, op=tdist.ReduceOp.SUM)
    return y / tdist.get_world_size()


def state_digest(state_dicts: Iterable[Mapping[str, torch.Tensor]]) -> str:
    """SHA-256 of the bytes of every tensor in ``state_dicts`` (in key order): equal digests, equal networks."""
    h = hashlib.sha256()
    for sd in state_dicts:
        for k in sorted(sd):
            h.update(k.encode())
            h.update(sd[k].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def network_digest(alg: Any) -> str:
    """:func:`state_digest` of the actor and critic as a checkpoint stores them (``actor_state_dict``, ...)."""
    return state_digest([alg.actor.state_dict(), alg.critic.state_dict()])


def gather_strings(s: str) -> list[str]:
    """``s`` of every rank, in rank order (``[s]`` when not distributed)."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return [s]
    out: list[Any] = [None] * tdist.get_world_size()
    tdist.all_gather_object(out, s)
    return [str(x) for x in out]


def launch(fn: Callable[..., T], nproc: int, *args: Any) -> dict[int, T]:
    """Run ``fn(*args)`` in ``nproc`` local ranks with torch's elastic launcher (``torchrun --standalone``'s
    rendezvous: c10d on a free local port); returns every rank's return value by rank.

    ``fn`` must be importable (a module-level function) and ``args`` picklable. A failing rank raises torch's
    ``ChildFailedError`` with that rank's traceback.
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    cfg = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=int(nproc), run_id=str(uuid.uuid4()),
                       rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, start_method="spawn",
                       monitor_interval=0.5)  # fmt: skip
    return elastic_launch(cfg, _rank_main)(fn, *args)


def _rank_main(fn: Callable[..., T], *args: Any) -> T:
    """One launched rank: ``fn(*args)``, then leave the process group. A rank that fails raises at once (no
    barrier: the others may be inside a collective); the launcher then stops the other ranks."""
    r = fn(*args)
    teardown()
    return r


def run_ranks(fn: Callable[[Any], dict[str, Any]], cfg: Any, nproc: int) -> dict[str, Any] | None:
    """``fn(cfg)`` in ``nproc`` ranks (``--nproc``), or once in this process (already a torchrun rank, or N=1).

    Returns rank 0's result; ``None`` on the other ranks of a torchrun job (they print nothing). Raises
    ``ValueError`` when ``--nproc`` is combined with torchrun (its ``--nproc_per_node`` sets the ranks).
    """
    if info().distributed:
        if nproc > 1:
            raise ValueError("--nproc starts local ranks itself: drop it under torchrun (use --nproc_per_node)")
        r = _rank_main(fn, cfg)
        return r if info().is_main else None
    if nproc <= 1:
        return fn(cfg)
    return launch(fn, nproc, cfg)[0]


def per_rank(cfg: T, d: DistInfo) -> T:
    """A training config for this rank: ``seed`` + rank, ``device`` ``cuda:<local_rank>``, and its share of the
    node's cores for each of ``threads``, ``torch_threads``, ``env_torch_threads`` the config has."""
    names = {f.name for f in fields(cfg)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {"device": rank_device(cfg.device, d)}  # type: ignore[attr-defined]
    if d.distributed:
        changes["seed"] = cfg.seed + d.rank  # type: ignore[attr-defined]
        for k in ("threads", "torch_threads", "env_torch_threads"):
            if k in names:
                changes[k] = rank_threads(getattr(cfg, k), d)
    return replace(cfg, **changes)  # type: ignore[type-var]
