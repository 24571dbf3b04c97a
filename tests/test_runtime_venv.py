"""The robot runtime installed alone (``runtime/``: asap-g1-runtime) runs an episode against the virtual G1.

A venv holding only the runtime wheel and what it pulls (numpy, onnxruntime, PyYAML, cyclonedds 0.10.x built against
the Cyclone DDS C library the full install uses) runs ``asap deploy`` on loopback, as on the robot's computer; the
virtual G1 runs from the full install in another process and this test presses its remote's buttons (START, A,
then Ctrl-C once the motion is done). The full install's ``asap deploy`` runs the same episode, and the two logs
are compared: the same state machine, number of policy steps, meta data and step fields; the runtime venv's
observations and actions equal what the full install computes from the logged states.

The venv is cached under ``run/runtime-venv/<key>`` (key: the runtime's pyproject.toml, the interpreter, the
Cyclone DDS library); the runtime wheel itself is rebuilt and reinstalled on every run. ``ASAP_RUNTIME_PYTHON``
picks the venv's interpreter (default: this one's), e.g. a python3.8 to run it as on a G1 with Ubuntu 20.04.
Without pip or the package index the test is skipped with the reason.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime"
CACHE = ROOT / "run" / "runtime-venv"
TRAINING_STACK = ("torch", "mujoco", "genesis-world", "rsl-rl-lib")
"""Distributions the runtime install must not contain."""
MOTION_S = 1.2
RT = 20  # SCHED_FIFO for the loops when permitted (root, as in CI), as in tests/test_dds_runtime.py
NETWORK_ERRORS = ("No matching distribution", "Could not find a version", "Failed to establish a new connection",
                  "Temporary failure in name resolution", "Network is unreachable", "ProxyError", "Read timed out",
                  "ConnectionError", "No module named pip", "ensurepip is not available")  # fmt: skip
"""pip/venv output that means "no index or no pip here" (skip) rather than a broken runtime install (fail)."""
EVENTS = ["ZERO_TORQUE", "RAMP", "HOLD", "RUN", "RAMP", "HOLD", "DAMPING"]
VOLATILE_META = ("pid", "start_wall", "domain_id")
"""Meta entries that differ between any two runs (each episode gets its own DDS domain)."""
ENTRY_MODULES = ("asap.cli", "deploy.commands", "deploy.collect", "deploy.runtime")
"""Where the robot runtime starts (the ``asap`` console script and the robot commands)."""


def _listed_files() -> set[str]:
    lines = (RUNTIME / "files.txt").read_text().splitlines()
    return {s.strip() for s in lines if s.strip() and not s.startswith("#")}


def _module_file(name: str) -> Path | None:
    p = ROOT.joinpath(*name.split("."))
    if p.is_dir():
        return p / "__init__.py"
    return p.with_suffix(".py") if p.with_suffix(".py").exists() else None


def _module_level_imports(name: str) -> set[str]:
    """The project modules (``asap.*``, ``deploy.*``, with their parent packages) that importing ``name`` runs."""
    tree = ast.parse(_module_file(name).read_text())
    out: set[str] = set()
    for top in tree.body:
        if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for node in ast.walk(top):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for m in mods:
                if m.split(".")[0] in ("asap", "deploy") and _module_file(m) is not None:
                    parts = m.split(".")
                    out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def test_files_list_covers_runtime_imports() -> None:
    """runtime/files.txt holds every project module that the runtime's entry points import at module level."""
    seen: set[str] = set()
    todo = list(ENTRY_MODULES)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += sorted(_module_level_imports(m) - seen)
    missing = sorted(str(_module_file(m).relative_to(ROOT)) for m in seen)
    missing = [f for f in missing if f not in _listed_files()]
    assert not missing, (f"the robot runtime imports {missing}: add them to runtime/files.txt (they must run on "
                         "Python 3.8: `make lint` checks them with vermin)")  # fmt: skip


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Run an install step; skip on a missing index or pip, fail on anything else."""
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    out = r.stdout + r.stderr
    if r.returncode != 0:
        if any(s in out for s in NETWORK_ERRORS):
            pytest.skip(f"{what}: pip or the package index is not available here ({out.strip().splitlines()[-1]})")
        pytest.fail(f"{what} failed:\n{out[-3000:]}")
    return out


def _cyclonedds_home() -> Path:
    """The Cyclone DDS prefix the full install's binding was built against (scripts/install_dds.sh)."""
    if os.environ.get("CYCLONEDDS_HOME"):
        return Path(os.environ["CYCLONEDDS_HOME"])
    from cyclonedds.__library__ import library_path

    return Path(library_path).parent.parent


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    """A venv with only the runtime install (cached); returns its bin/ folder."""
    pytest.importorskip("cyclonedds")
    python = os.environ.get("ASAP_RUNTIME_PYTHON", sys.executable)
    version = _run([python, "-c", "import sys; print(sys.version)"], "the venv's interpreter").strip()
    home = _cyclonedds_home()
    key = hashlib.sha256("\n".join([(RUNTIME / "pyproject.toml").read_text(), version, str(home)]).encode())
    venv = CACHE / key.hexdigest()[:16]
    bin_dir = venv / "bin"
    wheel_dir = tmp_path_factory.mktemp("runtime_wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(RUNTIME), "-w",
          str(wheel_dir)], "building the runtime wheel")  # fmt: skip
    wheel = next(wheel_dir.glob("asap_g1_runtime-*.whl"))
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        _run([python, "-m", "venv", str(venv)], "creating the runtime venv")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_CONSTRAINT")}
        env["CYCLONEDDS_HOME"] = str(home)
        # cyclonedds from source against the robot's (here: the full install's) C library, as on the G1; no
        # cache: a cached cyclonedds wheel would carry another prefix's library path
        _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-cache-dir", "--no-binary", "cyclonedds",
              str(wheel)], "installing the runtime", env=env)  # fmt: skip
        (venv / ".complete").write_text(version + "\n")
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", "--no-index",
          str(wheel)], "reinstalling the runtime wheel")  # fmt: skip
    return bin_dir


def test_runtime_install_has_no_training_stack(runtime_venv: Path, tmp_path: Path) -> None:
    out = _run([str(runtime_venv / "python"), "-m", "pip", "list", "--format", "json"], "pip list")
    names = {d["name"].lower().replace("_", "-") for d in json.loads(out.strip().splitlines()[-1])}
    print(f"[runtime venv] {len(names)} distributions: {sorted(names)}")
    assert not names & set(TRAINING_STACK), sorted(names & set(TRAINING_STACK))
    assert {"asap-g1-runtime", "numpy", "onnxruntime", "pyyaml", "cyclonedds"} <= names
    assert "asap-g1" not in names
    # the packages come from the venv, not from this checkout
    r = subprocess.run([str(runtime_venv / "python"), "-c", "import asap, deploy.runtime; print(asap.__file__)"],
                       capture_output=True, text=True, cwd=tmp_path, env=_clean_env())  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert Path(r.stdout.strip()).is_relative_to(runtime_venv.parent), r.stdout
    # its `asap` lists the robot commands (the training stages are not installed)
    r = subprocess.run([str(runtime_venv / "asap"), "--help"], capture_output=True, text=True, cwd=tmp_path,
                       env=_clean_env())  # fmt: skip
    assert r.returncode == 0 and "deploy" in r.stdout and "pretrain" not in r.stdout, r.stdout + r.stderr[-2000:]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _episode(asap_exe: Path, policy: Path, tmp: Path, label: str) -> tuple[Path, list[str]]:
    """One episode of ``asap deploy`` (the ``asap`` console script ``asap_exe``) against a fresh virtual G1;
    returns the log directory and the command's output."""
    from deploy import virtual_g1
    from deploy.testing import next_test_domain

    dom = next_test_domain()
    sim = virtual_g1.spawn(None, dom, "lo", log=tmp / f"{label}_sim.log", rt_priority=RT)
    log_dir = tmp / f"{label}_log"
    cmd = [str(asap_exe), "deploy", "--policy", str(policy), "--net", "lo", "--domain-id", str(dom), "--yes",
           "--seconds", "90", "--log-dir", str(log_dir), "--config", "configs/deploy/g1_real.yaml",
           "--override", "controller.ramp_s=0.5", "exit_damping_s=0.2", f"rt_priority={RT}",
           "controller.safety.state_timeout_s=0.25"]  # fmt: skip
    proc = None
    lines: list[str] = []
    seen: queue.Queue[str] = queue.Queue()
    try:
        cli = virtual_g1.SimClient(dom, "lo")
        assert cli.wait(30), "the virtual G1 did not start"
        # from a folder outside the checkout: the runtime venv must use its installed copy (configs included)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, cwd=tmp, env=_clean_env())  # fmt: skip

        def read() -> None:
            for line in proc.stdout:
                lines.append(line)
                seen.put(line)

        threading.Thread(target=read, daemon=True).start()

        def wait_for(text: str, timeout: float = 60.0) -> None:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                try:
                    if text in seen.get(timeout=0.1):
                        return
                except queue.Empty:
                    if proc.poll() is not None and seen.empty():
                        break
            raise AssertionError(f"{label}: no '{text}' from asap deploy:\n{''.join(lines)[-3000:]}")

        wait_for("-> ZERO_TORQUE")
        time.sleep(0.3)
        cli.press("START")
        wait_for("RAMP -> HOLD")
        time.sleep(0.3)
        cli.press("A")
        wait_for("-> RUN")
        wait_for("RUN -> RAMP", MOTION_S + 10)
        wait_for("RAMP -> HOLD")
        proc.send_signal(signal.SIGINT)  # Ctrl-C: damping, then exit
        assert proc.wait(30) == 0, "".join(lines)[-3000:]
    finally:
        for p in (proc, sim):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
    return log_dir, lines


def _recomputed(log: dict, policy: Path) -> tuple[float, float]:
    """Largest differences between the logged RUN observations/actions and the full install's asap.obs (NumPy)
    and onnxruntime fed the logged states, step by step from the start of the motion."""
    from asap.obs import ObsBuilder, proprio_terms
    from deploy.testing import reference_actions

    s, meta = log["steps"], log["meta"]
    run = np.nonzero(_run_mask(log))[0]
    jm = np.asarray(meta["joint_motor_index"])
    default = np.array([float(x) for x in meta["default_joint_pos"].split(",")], np.float32)
    ref = ObsBuilder(meta["obs_layout"], num_envs=1, num_joints=len(jm), backend="numpy", groups=("actor",))
    last = np.zeros(len(jm), np.float32)
    f = lambda x: np.asarray(x, dtype=np.float32)[None]  # noqa: E731
    obs = []
    for i in run:
        raw = proprio_terms(f(s["imu_quat"][i]), f(s["imu_gyro"][i]), f(s["q"][i][jm]), f(s["dq"][i][jm]), default,
                            f(last), f([s["phase"][i]])[0])  # fmt: skip
        obs.append(np.asarray(ref.build(raw)["actor"][0], np.float32))
        last = np.clip(s["action"][i], -100, 100).astype(np.float32)
    obs = np.stack(obs)
    act = reference_actions(policy, obs)
    return float(np.abs(obs - s["obs"][run]).max()), float(np.abs(act - s["action"][run]).max())


def _run_mask(log: dict) -> np.ndarray:
    from deploy.controller import Mode

    return log["steps"]["mode"] == Mode.RUN


def test_runtime_venv_episode_matches_full_install(runtime_venv: Path, tmp_path: Path) -> None:
    from deploy.testing import make_policy, test_contract

    policy = make_policy(tmp_path / "policy.onnx", test_contract(motion_length_s=MOTION_S, motion_name="onboard"))
    full_exe = Path(sys.executable).parent / "asap"
    if not full_exe.exists():
        pytest.skip(f"the full install's `asap` console script is not at {full_exe}")
    t0 = time.monotonic()
    venv_dir, venv_out = _episode(runtime_venv / "asap", policy, tmp_path, "runtime_venv")
    t1 = time.monotonic()
    full_dir, _ = _episode(full_exe, policy, tmp_path, "full")
    print(f"[episodes] runtime venv {t1 - t0:.1f} s, full install {time.monotonic() - t1:.1f} s")
    from deploy.logger import read_log

    venv_log, full_log = read_log(venv_dir), read_log(full_dir)
    for name, log in (("runtime venv", venv_log), ("full install", full_log)):
        assert not log["skipped"], (name, log["skipped"])
        print(f"[{name}] " + " | ".join(f"{e['to']} ({e['cause']})" for e in log["events"]))
        seq = [e["to"] for e in log["events"]]
        # a SIGINT seen by the loop's check before its exit test is logged twice (trip, then exit): both damping
        assert [m for i, m in enumerate(seq) if i == 0 or m != seq[i - 1]] == EVENTS, name
        assert all("SIGINT" in e["cause"] for e in log["events"][EVENTS.index("DAMPING") :]), name
        assert _run_mask(log).sum() == round(MOTION_S / 0.02), name
    # the same log: meta data, step fields (names, dtypes, per-step shapes)
    vm, fm = (({k: v for k, v in lg["meta"].items() if k not in VOLATILE_META}) for lg in (venv_log, full_log))
    assert vm.keys() == fm.keys()
    differ = sorted(k for k in vm if vm[k] != fm[k])
    assert not differ, {k: (vm[k], fm[k]) for k in differ}
    vs, fs = venv_log["steps"], full_log["steps"]
    assert vs.keys() == fs.keys()
    for k in vs:
        assert (vs[k].dtype, vs[k].shape[1:]) == (fs[k].dtype, fs[k].shape[1:]), k
    # the runtime venv computed what the full install computes from the same states
    obs_err, act_err = _recomputed(venv_log, policy)
    print(f"[runtime venv] obs max error {obs_err:.2e}, action max error {act_err:.2e}")
    assert obs_err <= 1e-5 and act_err <= 1e-4, (obs_err, act_err)
    # and the two episodes moved the robot alike (same policy, robot in its support; timing differs slightly)
    qv, qf = vs["q"][_run_mask(venv_log)], fs["q"][_run_mask(full_log)]
    dq = float(np.abs(qv - qf).mean())
    print(f"[episodes] mean |q_runtime_venv - q_full| over the motion: {dq:.4f} rad")
    assert dq < 0.05, dq
    assert any("Before sending torque commands" in line for line in venv_out)  # the checklist was printed
    # the conversion a real robot runs at the end of `asap collect` without an odometry stream: the root estimated
    # from the IMU and leg kinematics, with the robot model copied from the workstation (ASAP_G1_MJCF)
    from asap.robot.assets import g1_mjcf_path
    from deploy.logger import log_to_motions

    env = _clean_env()
    env["ASAP_G1_MJCF"] = str(g1_mjcf_path())
    code = (
        "import sys, numpy as np; from deploy.logger import log_to_motions; "
        "m = log_to_motions(sys.argv[1], root_source='estimate')[0]; "
        "np.savez(sys.argv[2], root_pos=m.root_pos, root_quat=m.root_quat, dof_pos=m.dof_pos, action=m.action)"
    )
    r = subprocess.run([str(runtime_venv / "python"), "-c", code, str(venv_dir), str(tmp_path / "onboard.npz")],
                       capture_output=True, text=True, cwd=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-2000:]
    onboard = np.load(tmp_path / "onboard.npz")
    ref = log_to_motions(venv_dir, root_source="estimate")[0]
    for k in ("root_pos", "root_quat", "dof_pos", "action"):
        np.testing.assert_allclose(onboard[k], getattr(ref, k), atol=1e-9, err_msg=k)
