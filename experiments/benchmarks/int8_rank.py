"""Which shared-weight accuracy ranks archs by their int8 top-1: float32, or simulated int8 (fake-quant)?

    python experiments/benchmarks/int8_rank.py [--checkpoint experiments/weights/supernet_fmnist.pt]
        [--set dev:100:16 --set heldout:200:16] [--calibration-data 8]
        [--out experiments/benchmarks/int8_rank.csv]

For each set (name:seed:count random archs of the checkpoint's space), on the validation split
the search uses (the test split is not read):
  - fp32: shared-weight top-1, batch norm recalibrated (what `evaluator: supernet` reports);
  - fake_int8: the same subnet under simulated int8 (`nas.supernet.fake_quantized`, as
    `evaluator.options.int8: true` reports);
  - ptq_int8: the truth: that subnet exported to ONNX, statically quantized with
    `nas.export.quantize_onnx` on `--calibration-data` real training batches (as
    `nas extract --quantize int8` does) and run by ONNX Runtime.
Prints, per set, Kendall τ of fp32 and of fake_int8 against ptq_int8 (and their mean absolute
gaps). The default is chosen on the dev set; the held-out set reports it. Resumable: archs already
in --out are kept. Writes one CSV row per arch.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _results import previous_rows, write_csv

ROOT = Path(__file__).resolve().parents[2]


def _calibration_images(checkpoint: str, space, resolution: int, batches: int) -> list[np.ndarray]:
    """What `nas extract --quantize int8 --calibration-data N` calibrates on: N seeded shuffled
    unaugmented train batches, fed one image at a time."""
    import torch

    from nas.data import BatchLoader
    from nas.supernet import checkpoint_config, config_loaders, resize

    config = checkpoint_config(checkpoint)
    loaders = config_loaders(config, max(space.resolutions))
    source = BatchLoader(loaders.train.dataset, config.data["batch_size"], shuffle=True,
                         resolution=loaders.train.image_shape[1:],
                         generator=torch.Generator().manual_seed(config.seed + 2))
    out: list[np.ndarray] = []
    for i, (x, _) in enumerate(source):
        if i == batches:
            break
        out += [img[None] for img in resize(x, resolution).numpy()]
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    from nas.export import export_onnx, predict_onnx, quantize_onnx
    from nas.supernet import accuracy, checkpoint_evaluator, fake_quantized, kendall_tau, recalibrated, resize

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "experiments/weights/supernet_fmnist.pt"))
    parser.add_argument("--set", action="append", dest="sets", metavar="NAME:SEED:COUNT",
                        help="a set of random archs (default dev:100:16 and heldout:200:16)")
    parser.add_argument("--calibration-data", type=int, default=8, help="train batches for the int8 ranges")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/int8_rank.csv"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = [(n, int(s), int(c)) for n, s, c in (x.split(":") for x in (args.sets or ["dev:100:16", "heldout:200:16"]))]
    supernet, evaluator = checkpoint_evaluator(args.checkpoint)
    space = supernet.space
    rows = previous_rows(args.out, {})
    done = {(r["set"], r["arch"]) for r in rows}
    val = evaluator.validation
    labels = np.concatenate([y.numpy() for _, y in val])
    calibration: dict[int, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="int8_rank.") as tmp:
        for name, seed, count in sets:
            rng = np.random.default_rng(seed)
            for i in range(count):
                arch = space.sample(rng)
                if (name, arch.to_json()) in done:
                    continue
                started = time.perf_counter()
                res = arch.resolution
                if res not in calibration:
                    calibration[res] = _calibration_images(args.checkpoint, space, res, args.calibration_data)
                net = recalibrated(supernet, arch, evaluator.calibration).eval()
                fp32 = accuracy(net, val, res)
                fake = accuracy(fake_quantized(net, evaluator.calibration, res), val, res)
                model, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
                export_onnx(net.to(memory_format=torch.contiguous_format), model, (1, space.in_channels, res, res))
                quantize_onnx(model, int8, calibration[res])
                images = [resize(x, res).numpy() for x, _ in val]
                ptq = float(np.mean(predict_onnx(int8, images) == labels))
                ort_fp32 = float(np.mean(predict_onnx(model, images) == labels))
                rows.append({"set": name, "seed": seed, "index": i, "arch": arch.to_json(), "arch_short": arch.short(),
                             "fp32": round(fp32, 5), "fake_int8": round(fake, 5), "ptq_int8": round(ptq, 5),
                             "ort_fp32": round(ort_fp32, 5), "val_images": len(labels),
                             "calibration_images": len(calibration[res]),
                             "seconds": round(time.perf_counter() - started, 1)})
                print(f"{name} {i:2d} {arch.short():40s} fp32 {fp32:.4f} fake {fake:.4f} ptq {ptq:.4f} "
                      f"({rows[-1]['seconds']} s)", flush=True)
                write_csv(rows, args.out)  # after every arch: an interrupted run keeps what it measured
    print()
    print(f"{'set':8s} {'archs':>5s} {'τ fp32':>8s} {'τ fake':>8s} {'|fp32-ptq|':>11s} {'|fake-ptq|':>11s}")
    for name, _, _ in sets:
        mine = [r for r in rows if r["set"] == name]
        fp32, fake, ptq = (np.array([float(r[k]) for r in mine]) for k in ("fp32", "fake_int8", "ptq_int8"))
        print(f"{name:8s} {len(mine):5d} {kendall_tau(fp32, ptq):8.3f} {kendall_tau(fake, ptq):8.3f} "
              f"{100 * np.mean(np.abs(fp32 - ptq)):9.2f} pt {100 * np.mean(np.abs(fake - ptq)):9.2f} pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
