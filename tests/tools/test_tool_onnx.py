"""ONNXOptimizer: export + onnxruntime optimisation + validation; int8 quantisation; the tool."""

from __future__ import annotations

import pytest
import torch

from trainopt.errors import HyperparameterError
from trainopt.tools.onnx_optimizer import ONNXOptimizer, optimize_for_inference, validate_optimizations


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5)).eval()


@pytest.mark.parametrize("exporter", ["torchscript", pytest.param("dynamo", marks=pytest.mark.slow)])
def test_export_matches_torch(mlp, tmp_path, exporter):
    exported = optimize_for_inference(mlp, torch.randn(2, 16), path=tmp_path / "m.onnx", exporter=exporter)
    report = validate_optimizations(mlp, exported, torch.randn(50, 16), batch_sizes=(1, 8), repeats=3)
    # fp32 graph optimisations change results only by rounding; every argmax agrees
    assert exported.exporter == exporter and not exported.quantized
    assert report.max_abs_error < 1e-4 and report.max_rel_error < 1e-5
    assert report.argmax_agreement == 1.0
    # latency for both runtimes at both batch sizes, with the thread count beside each
    assert {(r.runtime, r.batch_size) for r in report.latency} == {
        (rt, b) for rt in ("torch eager", "onnxruntime") for b in (1, 8)}
    assert all(r.threads >= 1 and r.p95_ms >= r.p50_ms > 0 for r in report.latency)


def test_int8_quantization_is_smaller_and_close(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)).eval()
    exported = optimize_for_inference(model, torch.randn(2, 64), quantize=True, path=tmp_path / "q.onnx",
                                      exporter="torchscript")
    report = validate_optimizations(model, exported, torch.randn(200, 64), batch_sizes=(4,), repeats=3)
    # int8 weights: about 4x smaller than the fp32 export; outputs off by a fraction of their scale
    # (an untrained net has near-tied logits, so a few argmaxes flip)
    assert exported.quantized and exported.size_bytes < 0.4 * exported.exported_size_bytes
    assert 0 < report.max_rel_error < 0.3
    assert report.argmax_agreement > 0.85


def test_file_is_replaced_atomically(mlp, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    optimize_for_inference(mlp, torch.randn(2, 16), path=target, exporter="torchscript")
    # the old file is replaced whole and no temporary file is left beside it
    assert target.read_bytes() != b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_missing_file_is_a_hyperparameter_error(mlp, tmp_path):
    with pytest.raises(HyperparameterError, match="no ONNX file"):
        validate_optimizations(mlp, tmp_path / "absent.onnx", torch.randn(4, 16))


def test_tool_exports_a_trained_workload_model(tmp_path):
    tool = ONNXOptimizer(workload="digits-mlp", device="cpu")
    out = tool(config={"steps": 30, "lr": 3e-3}, path=str(tmp_path / "digits.onnx"), exporter="torchscript",
               batch_sizes=[1, 32], repeats=3)
    # the trained MLP exports with tiny error and classifies the validation set like torch does
    assert out.trained_steps == 30
    assert out.report.n_examples == 180 and out.report.argmax_agreement == 1.0
    assert out.report.max_abs_error < 1e-4
