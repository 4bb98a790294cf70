"""ONNXOptimizer: export a trained model to ONNX, optimise it for onnxruntime, validate it.

``optimize_for_inference`` exports with ``torch.onnx.export`` (the dynamo exporter by default,
TorchScript on request or when dynamo fails), optionally applies onnxruntime's dynamic int8
quantisation (weights int8, activations quantised per batch at run time), then onnxruntime's
graph optimisations (ORT_ENABLE_ALL: constant folding, node fusions, layout) and writes the file
atomically (a temporary file in the same folder, then ``os.replace``). The ENABLE_ALL graph may
hold CPU-specific fused ops: it is meant for the onnxruntime CPU provider it was made with.

``validate_optimizations`` compares outputs (max abs / relative error, argmax agreement) and
latency of torch eager against onnxruntime (p50/p95 at batch 1 and a larger batch, timed
interleaved, with thread count and batch size beside each figure). Spinning intra-op threads
are off (``session.intra_op.allow_spinning = 0``) so onnxruntime does not slow torch afterwards.

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    >>> exported = optimize_for_inference(model, torch.randn(2, 64), path="/tmp/doc.onnx",  # doctest: +SKIP
    ...                                   exporter="torchscript")
    >>> validate_optimizations(model, exported, torch.randn(128, 64)).max_abs_error < 1e-4  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from trainopt.errors import ConvergenceError, HyperparameterError
from trainopt.tools.base import Tool
from trainopt.tools.store import DEFAULT_OUT_DIR
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial

Exporter = Literal["dynamo", "torchscript"]
INPUT_NAME, OUTPUT_NAME = "input", "output"


class OptimizedModel(BaseModel):
    """What ``optimize_for_inference`` wrote."""

    path: str
    exporter: Exporter = Field(description="the torch.onnx exporter that produced the graph")
    quantized: bool = Field(description="dynamic int8 quantisation applied")
    graph_optimization: str = "ORT_ENABLE_ALL"
    size_bytes: int
    exported_size_bytes: int = Field(description="size of the plain fp32 export, before optimisation")
    notes: list[str] = Field(default_factory=list)


class LatencyRow(BaseModel):
    runtime: Literal["torch eager", "onnxruntime"]
    batch_size: int
    threads: int = Field(description="intra-op threads of this runtime")
    p50_ms: float
    p95_ms: float
    repeats: int


class ValidationReport(BaseModel):
    """Accuracy and latency of the optimised model against the original."""

    n_examples: int
    max_abs_error: float
    max_rel_error: float = Field(description="max |onnx - torch| / max |torch| (relative to the output scale)")
    argmax_agreement: float | None = Field(
        None, description="fraction of examples whose argmax over the last dim agrees (None: scalar outputs)")
    latency: list[LatencyRow]
    speedup_p50: dict[str, float] = Field(description="torch p50 / onnxruntime p50, per batch size")
    model_path: str
    quantized: bool | None = None


def optimize_for_inference(
    model: torch.nn.Module,
    example_input: torch.Tensor,
    quantize: bool = False,
    path: str | Path | None = None,
    exporter: Exporter = "dynamo",
) -> OptimizedModel:
    """Export ``model`` (batch dimension dynamic), optionally quantise, optimise, save atomically."""
    if not isinstance(example_input, torch.Tensor) or example_input.dim() == 0:
        raise HyperparameterError(f"example_input must be a batched tensor but got {type(example_input).__name__}",
                                  {"example_input": repr(example_input)[:80]})
    if exporter not in ("dynamo", "torchscript"):
        raise HyperparameterError(f"exporter must be 'dynamo' or 'torchscript' but got {exporter=}",
                                  {"exporter": exporter})
    target = Path(path) if path is not None else Path(DEFAULT_OUT_DIR) / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    example = example_input.detach().cpu()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".onnx-") as work:
        raw = Path(work) / "exported.onnx"
        used = _export(model, example, raw, exporter, notes)
        source = raw
        if quantize:
            source = _quantize(raw, Path(work), notes)
        optimized = Path(work) / "optimized.onnx"
        options = _session_options(threads=1)
        options.graph_optimization_level = _ort().GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(optimized)
        _ort().InferenceSession(str(source), options, providers=["CPUExecutionProvider"])  # writes it
        tmp = target.with_name(f".{target.name}.tmp")
        os.replace(optimized, tmp)
        os.replace(tmp, target)  # atomic on one filesystem: readers see the old file or the new one
        exported_size = raw.stat().st_size
    return OptimizedModel(path=str(target), exporter=used, quantized=quantize, size_bytes=target.stat().st_size,
                          exported_size_bytes=exported_size, notes=notes)


def validate_optimizations(
    original: torch.nn.Module,
    optimized: OptimizedModel | str | Path,
    test_data: torch.Tensor,
    batch_sizes: tuple[int, ...] = (1, 64),
    repeats: int = 30,
    threads: int | None = None,
) -> ValidationReport:
    """Outputs and latency of ``original`` (torch eager) against the ONNX file, on ``test_data``."""
    path = optimized.path if isinstance(optimized, OptimizedModel) else str(optimized)
    if not Path(path).exists():
        raise HyperparameterError(f"no ONNX file at {path!r}", {"path": path})
    if not isinstance(test_data, torch.Tensor) or len(test_data) == 0:
        raise HyperparameterError("test_data must be a non-empty batched tensor", {"test_data": repr(test_data)[:80]})
    if repeats < 3 or any(b <= 0 for b in batch_sizes):
        raise HyperparameterError(f"repeats must be >= 3 and batch sizes > 0 but got {repeats=}, {batch_sizes=}",
                                  {"repeats": repeats, "batch_sizes": list(batch_sizes)})
    threads = threads or torch.get_num_threads()
    original = original.cpu().eval()
    data = test_data.detach().cpu()
    session = _ort().InferenceSession(path, _session_options(threads), providers=["CPUExecutionProvider"])

    with _torch_threads(threads), torch.inference_mode():
        reference = original(data).float().numpy()
    candidate = session.run(None, {session.get_inputs()[0].name: data.numpy()})[0].astype(np.float32)
    if candidate.shape != reference.shape:
        raise ConvergenceError(f"ONNX output shape {candidate.shape} != torch output shape {reference.shape}",
                               {"path": path})
    diff = np.abs(candidate - reference)
    scale = max(float(np.abs(reference).max()), 1e-12)
    agreement = None
    if reference.ndim >= 2:
        agreement = float(np.mean(candidate.argmax(-1) == reference.argmax(-1)))

    rows, speedup = [], {}
    for batch_size in batch_sizes:
        batch = _batch_of(data, batch_size)
        torch_ms, ort_ms = _time_interleaved(original, session, batch, repeats, threads)
        rows += [
            LatencyRow(runtime="torch eager", batch_size=batch_size, threads=threads, repeats=repeats,
                       p50_ms=float(np.percentile(torch_ms, 50)), p95_ms=float(np.percentile(torch_ms, 95))),
            LatencyRow(runtime="onnxruntime", batch_size=batch_size, threads=threads, repeats=repeats,
                       p50_ms=float(np.percentile(ort_ms, 50)), p95_ms=float(np.percentile(ort_ms, 95))),
        ]
        speedup[str(batch_size)] = float(np.percentile(torch_ms, 50) / max(np.percentile(ort_ms, 50), 1e-9))
    return ValidationReport(
        n_examples=len(data), max_abs_error=float(diff.max()), max_rel_error=float(diff.max()) / scale,
        argmax_agreement=agreement, latency=rows, speedup_p50=speedup, model_path=path,
        quantized=optimized.quantized if isinstance(optimized, OptimizedModel) else None,
    )


def _export(model, example, path: Path, exporter: Exporter, notes: list[str]) -> Exporter:
    """torch.onnx.export with a dynamic batch dimension; dynamo first, TorchScript as the fallback."""
    if exporter == "dynamo":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (example,), str(path), dynamo=True, verbose=False, external_data=False,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
            return "dynamo"
        except Exception as error:  # noqa: BLE001 - any exporter failure falls back, and is said
            notes.append(f"dynamo export failed ({type(error).__name__}: {str(error)[:200]}); used TorchScript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated in torch >= 2.9
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    return "torchscript"


def _quantize(raw: Path, work: Path, notes: list[str]) -> Path:
    """Dynamic int8: onnxruntime's pre-processing (shape inference, fp32 optimisation), then quantize_dynamic."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared, quantized = work / "prepared.onnx", work / "quantized.onnx"
    try:
        quant_pre_process(str(raw), str(prepared), skip_symbolic_shape=True)
    except Exception as error:  # noqa: BLE001 - pre-processing is an optional improvement
        notes.append(f"quantisation pre-processing skipped ({type(error).__name__}: {str(error)[:120]})")
        prepared = raw
    quantize_dynamic(str(prepared), str(quantized), weight_type=QuantType.QInt8)
    notes.append("dynamic int8 quantisation (QInt8 weights, activations quantised per call)")
    return quantized


def _ort():
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # errors only
    return onnxruntime


def _session_options(threads: int):
    options = _ort().SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see docs/architecture.md, known pitfalls
    return options


@contextmanager
def _torch_threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _batch_of(data: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``batch_size`` rows of ``data``, cycling when it has fewer."""
    index = torch.arange(batch_size) % len(data)
    return data[index]


def _time_interleaved(model, session, batch: torch.Tensor, repeats: int, threads: int):
    """Per-call latency in ms, torch and onnxruntime alternating so load noise hits both alike."""
    feed = {session.get_inputs()[0].name: batch.numpy()}
    torch_ms, ort_ms = [], []
    with _torch_threads(threads), torch.inference_mode():
        for _ in range(3):  # warm-up
            model(batch)
            session.run(None, feed)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(batch)
            t1 = time.perf_counter()
            session.run(None, feed)
            t2 = time.perf_counter()
            torch_ms.append(1e3 * (t1 - t0))
            ort_ms.append(1e3 * (t2 - t1))
    return np.array(torch_ms), np.array(ort_ms)


def model_input(batch: Any) -> torch.Tensor:
    """The model's input in a workload batch: the batch itself, or its first element."""
    return batch[0] if isinstance(batch, list | tuple) else batch


class ONNXInput(BaseModel):
    config: dict[str, Any] | None = Field(
        None, description="TrialConfig fields to train the workload's model with (default: its defaults)")
    quantize: bool = Field(False, description="dynamic int8 quantisation")
    path: str | None = Field(None, description="where to write the .onnx (default trainopt-out/<workload>.onnx)")
    exporter: Exporter = "dynamo"
    batch_sizes: tuple[int, ...] = Field((1, 64), description="batch sizes to time")
    repeats: int = Field(30, ge=3, le=10_000, description="timed calls per runtime and batch size")
    threads: int | None = Field(None, gt=0, description="intra-op threads for both runtimes (default: torch's)")


class ONNXOutput(BaseModel):
    model: OptimizedModel
    report: ValidationReport
    trained_steps: int
    val_loss: float


class ONNXOptimizer(Tool):
    """Train the workload's model, export it to an optimised (optionally int8) ONNX file, validate it."""

    name = "onnx_optimizer"
    description = (
        "Train the workload's model, export it to ONNX (torch.onnx), apply onnxruntime graph optimisations "
        "and optional dynamic int8 quantisation, and validate against torch: max abs/relative error, argmax "
        "agreement, p50/p95 latency at batch 1 and a larger batch with thread counts."
    )
    Input = ONNXInput
    Output = ONNXOutput

    optimize_for_inference = staticmethod(optimize_for_inference)
    validate_optimizations = staticmethod(validate_optimizations)

    def run(self, input: ONNXInput) -> ONNXOutput:
        config = TrialConfig(**{**self.workload.default_config, **(input.config or {})})
        trained: list[torch.nn.Module] = []
        result = run_trial(self.workload, config, self.device, progress=self.progress,
                           on_trained=trained.append)
        if result.diverged:
            raise ConvergenceError(f"training diverged ({result.divergence_reason}): nothing worth exporting",
                                   {"config": config.model_dump(mode="json")})
        test_data = torch.cat([model_input(batch).cpu() for batch, _ in self.workload.val_batches(torch.device("cpu"))])
        path = input.path or str(Path(DEFAULT_OUT_DIR) / f"{self.workload.name}.onnx")
        exported = optimize_for_inference(trained[0], test_data[:2], input.quantize, path, input.exporter)
        report = validate_optimizations(trained[0], exported, test_data, input.batch_sizes, input.repeats,
                                        input.threads)
        return ONNXOutput(model=exported, report=report, trained_steps=result.steps_run,
                          val_loss=result.final_val_loss)
