"""Running a policy file on the robot side: load an ONNX model and its contract (:mod:`asap.contract`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asap.contract import REQUIRED_KEYS, ContractError, PolicyContract

__all__ = ["REQUIRED_KEYS", "ContractError", "OnnxPolicy", "PolicyContract", "write_metadata"]


class OnnxPolicy:
    """An ONNX policy on the CPU (one thread), with its contract."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"policy {self.path} does not exist")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ContractError(f"{self.path}: cannot load ONNX model ({e})") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        self.contract = PolicyContract.from_metadata(dict(meta), str(self.path))
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ContractError(f"{self.path}: expected one input and one output, got {len(inputs)}/{len(outputs)}")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        width = inputs[0].shape[-1]
        if isinstance(width, int) and width != self.contract.obs_dim:
            raise ContractError(f"{self.path}: input width {width} != metadata obs_dim {self.contract.obs_dim}")
        out_w = outputs[0].shape[-1]
        if isinstance(out_w, int) and out_w != self.contract.num_joints:
            raise ContractError(f"{self.path}: output width {out_w} != {self.contract.num_joints} joints")

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Raw action (J,) for one observation (obs_dim,)."""
        x = np.asarray(obs, dtype=np.float32).reshape(1, -1)
        return self.session.run([self.output_name], {self.input_name: x})[0][0]


def write_metadata(onnx_path: str | Path, meta: dict[str, str]) -> None:
    """Add/replace metadata entries of an ONNX file in place (used by tests and by hand-made policies)."""
    import onnx

    model = onnx.load(str(onnx_path))
    existing = {p.key: p for p in model.metadata_props}
    for k, v in meta.items():
        if k in existing:
            existing[k].value = str(v)
        else:
            p = model.metadata_props.add()
            p.key, p.value = k, str(v)
    onnx.save(model, str(onnx_path))
