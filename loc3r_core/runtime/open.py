"""Opening a backend by name: what the CLI and the ROS node share."""

from __future__ import annotations

from pathlib import Path

from loc3r_core.errors import UsageError
from loc3r_core.runtime.backend import Backend

BACKENDS = ("onnx", "torch")


def open_backend(kind: str = "onnx", checkpoint: Path | None = None, onnx: Path | None = None,
                 provider: str = "cpu") -> Backend:
    """The ONNX backend on an export (the shipped one by default), or PyTorch on a checkpoint.

    The ONNX path imports no torch; asking it for a checkpoint without naming its export is an
    error rather than a silent export, which would need torch.
    """
    if kind == "torch":
        if onnx is not None:
            raise UsageError("--onnx is for the onnx backend; the torch backend runs --checkpoint")
        try:
            from loc3r_core.runtime.torch_backend import TorchBackend
        except ImportError as exc:
            raise UsageError(f"the torch backend needs PyTorch and transformers ({exc}); use --backend onnx") from None
        return TorchBackend(checkpoint, device="cuda" if provider == "cuda" else "cpu")
    if kind == "onnx":
        if checkpoint is not None and onnx is None:
            raise UsageError(f"the onnx backend runs an export: `loc3r export --checkpoint {checkpoint} --out DIR`, "
                             "then pass --onnx DIR (with --checkpoint it is checked against it)")
        from loc3r_core.runtime.onnx_backend import OnnxBackend

        return OnnxBackend(onnx, provider, checkpoint)
    raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, not {kind!r}")
