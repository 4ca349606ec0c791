"""The ONNX Runtime backend: the exported graphs, no torch anywhere on this path.

Execution providers: "cpu", "cuda", or "tensorrt" (fp16 engines cached on disk so a robot
builds them once, with CUDA then CPU as fallbacks for what TensorRT cannot take).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from loc3r_core.errors import DataError, UsageError
from loc3r_core.runtime.backend import KVCache, TextCodec, answer_outputs, graph_names, head_names
from loc3r_core.runtime.spec import ModelSpec, file_sha256, read_json

SHIPPED_EXPORT = Path(__file__).resolve().parent.parent / "checkpoints" / "loc3r-tiny-onnx"
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def provider_list(provider: str, cache_dir: Path) -> list:
    """ONNX Runtime's providers for one of PROVIDERS, best first; an unavailable one is a UsageError."""
    if provider not in PROVIDERS:
        raise UsageError(f"execution provider must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    available = ort.get_available_providers()
    if PROVIDERS[provider] not in available:
        raise UsageError(f"ONNX Runtime here has no {PROVIDERS[provider]} (it has {', '.join(available)}); "
                         "install onnxruntime-gpu with CUDA/TensorRT for the GPU providers")
    if provider == "tensorrt":
        cache_dir.mkdir(parents=True, exist_ok=True)
        options = {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                   "trt_engine_cache_path": str(cache_dir), "trt_timing_cache_enable": True,
                   "trt_timing_cache_path": str(cache_dir)}
        return [("TensorrtExecutionProvider", options), "CUDAExecutionProvider", "CPUExecutionProvider"]
    if provider == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxBackend:
    name = "onnx"

    def __init__(self, folder: Path | None = None, provider: str = "cpu", checkpoint: Path | None = None,
                 threads: int = 0, engine_cache: Path | None = None) -> None:
        """folder: a `loc3r export` output (the shipped model's when None). checkpoint: if given,
        the export must come from it. threads: intra-op threads (0: ONNX Runtime's choice)."""
        self.folder = Path(folder) if folder is not None else SHIPPED_EXPORT
        manifest = read_manifest(self.folder)
        self.spec = ModelSpec.from_json(manifest["spec"], self.folder / "runtime.json")
        self.precision = manifest.get("precision", "fp32")
        if checkpoint is not None:
            expected = file_sha256(Path(checkpoint) / "model.safetensors")
            if expected != self.spec.checkpoint_sha256:
                raise DataError(f"the ONNX files in {self.folder} were exported from another checkpoint than "
                                f"{checkpoint}: re-run `loc3r export --checkpoint {checkpoint} --out {self.folder}`")
        self.text = TextCodec(self.folder / "tokenizer.json")
        self.provider = provider
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's business
        providers = provider_list(provider, engine_cache or self.folder / "trt_cache")
        self.sessions = {}
        for name in graph_names(self.spec):
            try:
                self.sessions[name] = ort.InferenceSession(str(self.folder / f"{name}.onnx"), options,
                                                           providers=providers)
            except Exception as exc:  # onnxruntime raises its own exception types per failure
                raise DataError(f"{self.folder / name}.onnx cannot be loaded: {str(exc).splitlines()[0]}") from None

    def providers_in_use(self) -> list[str]:
        return self.sessions["decoder"].get_providers()

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        return self.sessions["vision"].run(None, {"images": images.astype(np.float32)})[0]

    def camera_tokens(self, prior: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return self.sessions["camera"].run(None, {"prior": prior.astype(np.float32), "valid": valid.astype(bool)})[0]

    def embed_tokens(self, ids: np.ndarray) -> np.ndarray:
        return self.sessions["embed"].run(None, {"ids": ids.astype(np.int64)})[0]

    def decode(self, embeds: np.ndarray, past: KVCache) -> tuple[np.ndarray, KVCache]:
        hidden, keys, values = self.sessions["decoder"].run(
            None, {"embeds": embeds[None].astype(np.float32), "past_keys": past[0], "past_values": past[1]})
        return hidden[0], (keys, values)

    def heads(self, hidden: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.sessions["heads"].run(None, {"hidden": hidden.astype(np.float32)})
        return dict(zip(head_names(self.spec), outputs, strict=True))

    def answer(self, reads: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.sessions["answer"].run(None, {"reads": reads.astype(np.float32)})
        return dict(zip(answer_outputs(self.spec), outputs, strict=True))


def read_manifest(folder: Path) -> dict:
    """runtime.json, after checking every file it names is there and unchanged since the export."""
    if not folder.is_dir():
        raise DataError(f"no ONNX export at {folder} (make one with `loc3r export --out {folder}`)")
    manifest = read_json(folder / "runtime.json")
    files = manifest.get("files")
    if not isinstance(files, dict) or "spec" not in manifest:
        raise DataError(f"{folder}/runtime.json is not a loc3r export manifest: re-run `loc3r export`")
    for name, digest in files.items():
        if file_sha256(folder / name) != digest:
            raise DataError(f"{folder}/{name} is not the file this export wrote (changed or from another export): "
                            "re-run `loc3r export`")
    return manifest
