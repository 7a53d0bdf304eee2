"""Supernet exactness: `extract(supernet, arch)(x)` vs `supernet(x, arch)`, and ONNX/TFLite exports.

    flock /tmp/hwnas-cpu.lock python experiments/benchmarks/supernet_exactness.py [--n 50] [--exports 3]
        [--checkpoint runs/supernet_fmnist/checkpoint.pt] [--out experiments/benchmarks/supernet_exactness.csv]

Without --checkpoint: the full ofa_mbv3 space (1000 classes, resolutions 128-224, width 1.0) with
random weights, perturbed kernel transforms and random batch-norm statistics (so identities cannot
hide errors). For each of N random archs (plus the largest and smallest): max |Δlogit| in eval mode
between the extracted static network and the supernet. For the first E archs also ONNX (onnxruntime)
and TFLite (ai-edge-litert, when litert-torch is installed) against the extracted torch network.
Target: every max |Δ| <= 1e-4. Prints a table, writes a CSV.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import nas
from nas.supernet import Supernet, extract, largest_arch, smallest_arch, supernet_from_checkpoint

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]


def randomized_supernet(space: nas.SearchSpace, seed: int) -> Supernet:
    torch.manual_seed(seed)
    supernet = Supernet(space)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in supernet.named_parameters():
            if "kernel_transforms" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        for m in supernet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    return supernet.eval()


def onnx_delta(net: torch.nn.Module, x: torch.Tensor, reference: np.ndarray, folder: Path) -> float:
    import onnxruntime as ort

    from nas.export import export_onnx

    path = export_onnx(net, folder / "m.onnx", tuple(x.shape))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": x.numpy()})[0]
    return float(np.abs(out - reference).max())


def tflite_delta(net: torch.nn.Module, x: torch.Tensor, reference: np.ndarray, folder: Path) -> float:
    from ai_edge_litert.interpreter import Interpreter

    from nas.export import export_tflite

    path = export_tflite(net, folder / "m.tflite", tuple(x.shape))
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], x.permute(0, 2, 3, 1).contiguous().numpy())  # NHWC input
    interpreter.invoke()
    return float(np.abs(interpreter.get_tensor(out["index"]) - reference).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50, help="random archs (plus the largest and smallest)")
    ap.add_argument("--exports", type=int, default=3, help="archs also exported to ONNX and TFLite")
    ap.add_argument("--checkpoint", default=None, help="a trained supernet instead of random weights")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "experiments/benchmarks/supernet_exactness.csv"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        supernet = supernet_from_checkpoint(args.checkpoint)
    else:
        supernet = randomized_supernet(nas.load_space("ofa_mbv3"), args.seed)
    space = supernet.space
    from nas.export import tflite_converter_available

    with_tflite = tflite_converter_available()
    rng = np.random.default_rng(args.seed)
    archs = [largest_arch(space), smallest_arch(space)] + [space.sample(rng) for _ in range(args.n)]
    rows = []
    print(f"space {space.name} width_mult {space.width_mult} classes {space.num_classes}; {len(archs)} archs")
    print(f"{'#':>3} {'res':>4} {'MMACs':>8} {'max|logit|':>10} {'torch |Δ|':>10} {'onnx |Δ|':>10} {'tflite |Δ|':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for i, arch in enumerate(archs):
            x = torch.randn(args.batch, space.in_channels, arch.resolution, arch.resolution,
                            generator=torch.Generator().manual_seed(i))
            with torch.no_grad():
                reference = supernet(x, arch)
                net = extract(supernet, arch).eval()
                static = net(x)
            row = {"arch": arch.short(), "resolution": arch.resolution,
                   "mmacs": nas.count_macs(arch, space.num_classes, space.in_channels) / 1e6,
                   "max_abs_logit": float(reference.abs().max()),
                   "torch_max_abs_diff": float((static - reference).abs().max()),
                   "onnx_max_abs_diff": "", "tflite_max_abs_diff": ""}
            if i < args.exports:
                row["onnx_max_abs_diff"] = onnx_delta(net, x, static.numpy(), Path(tmp))
                if with_tflite:
                    row["tflite_max_abs_diff"] = tflite_delta(net, x, static.numpy(), Path(tmp))
            rows.append(row)
            fmt = lambda v: f"{v:10.2e}" if v != "" else f"{'-':>10}"  # noqa: E731
            print(f"{i:3d} {arch.resolution:4d} {row['mmacs']:8.1f} {row['max_abs_logit']:10.3f} {fmt(row['torch_max_abs_diff'])} "
                  f"{fmt(row['onnx_max_abs_diff'])} {fmt(row['tflite_max_abs_diff'])}", flush=True)
    worst = {k: max((r[k] for r in rows if r[k] != ""), default=None)
             for k in ("torch_max_abs_diff", "onnx_max_abs_diff", "tflite_max_abs_diff")}
    print("worst: " + ", ".join(f"{k} {v:.2e}" if v is not None else f"{k} n/a" for k, v in worst.items())
          + f"  (target <= 1e-4: {'PASS' if all(v is None or v <= 1e-4 for v in worst.values()) else 'FAIL'})")
    if not with_tflite:
        print("TFLite skipped: litert-torch is not installed (pip install 'hwnas[tflite]')")
    write_csv(rows, args.out)


if __name__ == "__main__":
    main()
