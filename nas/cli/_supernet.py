"""``nas supernet train|sample-accuracy|fit-predictor`` and ``nas extract``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from nas.cli._common import add_count, add_overrides, add_quiet
from nas.cli._model import add_subnet_source


def register(sub: argparse._SubParsersAction) -> None:
    supernet = sub.add_parser("supernet", help="train a once-for-all supernet and measure its subnets")
    cmds = supernet.add_subparsers(dest="supernet_command", required=True, metavar="SUBCOMMAND")

    p = cmds.add_parser("train", help="progressive-shrinking training from a YAML config (resumes if a "
                                      "checkpoint exists in its output_dir); runs under torchrun too")
    p.add_argument("--config", required=True, help="YAML config, e.g. experiments/supernet_fmnist.yaml")
    add_overrides(p, "phases.0.steps=500")
    p.add_argument("--data-root", default=None, help="read the config's dataset from this directory "
                                                     "(sets data.root; resume with the same value)")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps of this run "
                                                           "(resume later with the same command)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per process (default: torch's choice)")
    add_quiet(p)
    p.set_defaults(func=_train)

    p = cmds.add_parser("sample-accuracy", help="shared-weight val accuracy of random archs, as JSON lines "
                                                "(appends; archs already in the file are skipped)")
    p.add_argument("--checkpoint", required=True, help="supernet checkpoint.pt")
    add_count(p, 100, "random archs to evaluate", old=("--num-archs",))
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", required=True, help="JSON-lines file: {arch, encoding, val_acc}")
    p.add_argument("--data-root", default=None, help="read the config's dataset from this directory")
    p.add_argument("--val-limit", type=int, default=None, help="evaluate on the first N validation images")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    add_quiet(p)
    p.set_defaults(func=_sample_accuracy)

    p = cmds.add_parser("fit-predictor", help="train the accuracy predictor (MLP on the arch encoding) on "
                                              "sample-accuracy results; prints held-out RMSE and Kendall tau")
    p.add_argument("--samples", required=True, nargs="+", help="JSON-lines files from sample-accuracy")
    p.add_argument("--checkpoint", required=True, help="the supernet checkpoint the samples came from (its space)")
    p.add_argument("--out", required=True, help="predictor file (.pt)")
    p.add_argument("--heldout", type=float, default=0.2, help="share of the pairs held out for the report")
    p.add_argument("--epochs", type=int, default=600, help="training epochs of the predictor MLP")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(func=_fit_predictor)

    p = sub.add_parser("extract", help="a subnet of a trained supernet as a standalone model file")
    p.add_argument("--checkpoint", required=True, help="supernet checkpoint.pt")
    add_subnet_source(p, "export this model file instead (`nas compress`'s pruned.pt, `nas finetune`'s output); "
                         "the checkpoint still names the data")
    p.add_argument("--format", choices=("torch", "onnx", "tflite"), default="torch", help="model file format")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--recalibrate-bn", type=int, default=0, metavar="N",
                   help="re-estimate batch-norm statistics on N training batches of the config's data")
    p.add_argument("--data-root", default=None,
                   help="read the config's dataset from this directory (with --recalibrate-bn, --quantize, --evaluate)")
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="post-training static quantization of the ONNX export (--format onnx): --out is the int8 "
                        "model, the float32 one is kept beside it as <out>.float32.onnx")
    p.add_argument("--calibration-data", type=int, default=8, metavar="N",
                   help="--quantize: activation ranges from N batches of the train split of the checkpoint "
                        "config's dataset")
    p.add_argument("--evaluate", nargs="?", const="val", choices=("val", "test"), default=None, metavar="SPLIT",
                   help="print the extracted model's top-1 on SPLIT (val | test; default val), run by ONNX Runtime "
                        "for onnx (with --quantize: float32, int8 and their agreement), else by torch")
    p.set_defaults(func=_extract)


def _threads(n: int | None) -> None:
    if n is not None:
        import torch

        torch.set_num_threads(n)


def train_config(path: str, overrides: Sequence[str] = (), data_root: str | None = None) -> Any:
    """The `nas.supernet.TrainConfig` of YAML file `path` with ``--set`` `overrides` (the one
    implementation `nas search` uses) and ``--data-root`` applied, checked."""
    from nas._config import ConfigError, read_yaml
    from nas.experiment import apply_overrides
    from nas.supernet import TrainConfig

    raw = read_yaml(path)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        raw = apply_overrides(raw or {}, overrides)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if data_root is not None:
        data = raw.get("data")
        raw["data"] = {**(data if isinstance(data, dict) else {}), "root": data_root}
    return TrainConfig.from_dict(raw, str(path))


def _train(args: argparse.Namespace) -> int:
    from nas.supernet import train_supernet

    _threads(args.threads)
    config = train_config(args.config, args.overrides, args.data_root)
    result = train_supernet(config, stop_after_steps=args.steps, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        state = "finished" if result.finished else "stopped"
        print(f"{state} at step {result.step}/{result.total_steps}; checkpoint {result.checkpoint}")
        for row in result.history[-2:]:
            print(f"  {row['phase']}: {row['arch']} subnet val acc {row['val_acc']:.4f}")
    return 0


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file; a truncated last line (from a crash) is dropped."""
    rows = []
    if path.exists():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if i != len(lines) - 1:
                    from nas._errors import HwnasError

                    raise HwnasError(f"{path}: line {i + 1} is not JSON") from None
    return rows


def _sample_accuracy(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from nas import Arch
    from nas.supernet import checkpoint_evaluator

    _threads(args.threads)
    supernet, evaluator = checkpoint_evaluator(args.checkpoint, args.data_root, args.val_limit)
    space = supernet.space
    out = Path(args.out)
    done = {Arch.from_dict(r["arch"]) for r in read_jsonl(out)}
    rng = np.random.default_rng(args.seed)
    archs: list = []
    for _ in range(args.n * 50):
        if len(archs) == args.n:
            break
        arch = space.sample(rng)
        if arch not in archs:
            archs.append(arch)
    todo = [a for a in archs if a not in done]
    print(f"{len(archs) - len(todo)} of {len(archs)} archs already in {out}", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        for arch in tqdm(todo, unit="arch", disable=args.quiet):
            row = {"arch": arch.to_dict(), "encoding": space.encode(arch), "val_acc": evaluator(arch)}
            f.write(json.dumps(row) + "\n")
            f.flush()
    return 0


def _fit_predictor(args: argparse.Namespace) -> int:
    from nas import Arch
    from nas._errors import HwnasError
    from nas._space import SearchSpace
    from nas.supernet import AccuracyPredictor
    from nas.supernet import load_checkpoint

    rows = [row for path in args.samples for row in read_jsonl(Path(path))]
    if not rows:
        raise HwnasError(f"no samples in {args.samples}")
    payload = load_checkpoint(args.checkpoint)
    space = SearchSpace(payload["space"], f"{args.checkpoint} (space)")
    archs = [Arch.from_dict(r["arch"]) for r in rows]
    predictor = AccuracyPredictor(space, seed=args.seed)
    report = predictor.fit(archs, [float(r["val_acc"]) for r in rows], heldout_fraction=args.heldout,
                           epochs=args.epochs, seed=args.seed)
    predictor.save(args.out)
    print(f"{len(rows)} pairs: train {report.num_train}, held out {report.num_heldout}")
    print(f"train RMSE {report.train_rmse * 100:.2f} pts; held-out RMSE {report.heldout_rmse * 100:.2f} pts "
          f"(accuracy spread {report.heldout_spread * 100:.2f} pts), Kendall tau {report.heldout_kendall_tau:.3f}")
    print(f"wrote {args.out}")
    return 0


def _images(args: argparse.Namespace, space: Any, split: str, resolution: int, batches: int | None = None
            ) -> list[tuple[Any, Any]]:
    """(images, labels) numpy batches of `split` of the checkpoint config's dataset at `resolution`;
    "calibration": `batches` seeded shuffled unaugmented train batches."""
    import torch

    from nas.data import BatchLoader
    from nas.supernet import checkpoint_config, config_loaders, resize

    config = checkpoint_config(args.checkpoint, args.data_root)
    loaders = config_loaders(config, max(space.resolutions))
    if split == "calibration":
        source = BatchLoader(loaders.train.dataset, config.data["batch_size"], shuffle=True,
                             resolution=loaders.train.image_shape[1:],
                             generator=torch.Generator().manual_seed(config.seed + 2))
    else:
        source = getattr(loaders, split)
    out = []
    for x, y in source:
        if batches is not None and len(out) == batches:
            break
        x = resize(x, resolution) if x.shape[-1] != resolution else x
        out.append((x.numpy(), y.numpy()))
    return out


def _evaluate(args: argparse.Namespace, net: Any, out: Path, fp32: Path | None, space: Any, resolution: int) -> None:
    """Print top-1 on `args.evaluate` of the written model (and of the float32 one, with --quantize)."""
    import numpy as np

    data = _images(args, space, args.evaluate, resolution)
    labels = np.concatenate([y for _, y in data])
    n = len(labels)
    if args.format != "onnx":
        import torch

        with torch.no_grad():
            pred = np.concatenate([net(torch.from_numpy(x)).argmax(1).numpy() for x, _ in data])
        print(f"{args.evaluate} top-1 {np.mean(pred == labels):.4f} on {n} images (torch, float32)")
        return
    from nas.export import predict_onnx

    images = [x for x, _ in data]
    pred = predict_onnx(out, images)
    if fp32 is None:
        print(f"{args.evaluate} top-1 {np.mean(pred == labels):.4f} on {n} images (onnxruntime, float32)")
        return
    ref = predict_onnx(fp32, images)
    print(f"{args.evaluate} top-1 on {n} images (onnxruntime): float32 {np.mean(ref == labels):.4f}, "
          f"int8 {np.mean(pred == labels):.4f} ({(np.mean(pred == labels) - np.mean(ref == labels)) * 100:+.2f} "
          f"points); the two agree on {np.mean(pred == ref):.4f} of the images")


def _extract(args: argparse.Namespace) -> int:
    from nas.cli._model import load_subnet
    from nas.supernet import checkpoint_evaluator, recalibrate_bn, supernet_from_checkpoint

    if args.quantize and args.format != "onnx":
        from nas._errors import HwnasError

        reason = ("the torch format has no int8 deployment path here" if args.format == "torch" else
                  "litert-torch's public API has no full-integer conversion for these networks (see `nas latency "
                  "build --dtype int8 --backend tflite`)")
        raise HwnasError(f"--quantize {args.quantize} needs --format onnx: {reason}")
    if args.calibration_data < 1:
        from nas._errors import HwnasError

        raise HwnasError(f"--calibration-data: {args.calibration_data} is not a positive number of batches")
    fp32: Path | None = None
    if args.recalibrate_bn:
        supernet, evaluator = checkpoint_evaluator(args.checkpoint, args.data_root)
    else:
        supernet = supernet_from_checkpoint(args.checkpoint)
    net = load_subnet(args, supernet)
    arch = net.arch
    if args.recalibrate_bn:
        net = recalibrate_bn(net, evaluator.calibration[:args.recalibrate_bn], arch.resolution)
    net.eval()
    space = supernet.space
    shape = (1, space.in_channels, arch.resolution, arch.resolution)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "torch":
        from nas.supernet import save_extracted

        save_extracted(net, out)
    else:
        try:
            from nas import export
        except ImportError:
            from nas._errors import HwnasError

            raise HwnasError(f"--format {args.format} needs nas.export, which this build lacks") from None
        if args.format == "onnx" and args.quantize:
            fp32 = out.with_name(out.name + ".float32.onnx")
            export.export_onnx(net, fp32, shape)
            calibration = [img[None] for x, _ in _images(args, space, "calibration", arch.resolution,
                                                           args.calibration_data) for img in x]
            export.quantize_onnx(fp32, out, calibration)
            print(f"wrote {fp32} (onnx, float32)")
        elif args.format == "onnx":
            export.export_onnx(net, out, shape)
        else:
            export.export_tflite(net, out, shape)
    layout = f"NHWC {[shape[0], shape[2], shape[3], shape[1]]}" if args.format == "tflite" else f"NCHW {list(shape)}"
    kind = f", {args.quantize}: {len(calibration)} calibration images" if fp32 else ""
    print(f"wrote {out} ({args.format}{kind}, {arch.short()}, input {layout})")
    if args.evaluate:
        _evaluate(args, net, out, fp32, space, arch.resolution)
    return 0
