"""The policy contract on the robot side: the ONNX loader and the contract live in :mod:`asap.contract` (NumPy and
onnxruntime only); this module names them for the runtime and adds :func:`write_metadata` for hand-made policies."""

from __future__ import annotations

from pathlib import Path

from asap.contract import REQUIRED_KEYS, ClipFingerprint, ContractError, OnnxPolicy, PolicyContract

__all__ = ["REQUIRED_KEYS", "ClipFingerprint", "ContractError", "OnnxPolicy", "PolicyContract", "write_metadata"]


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
