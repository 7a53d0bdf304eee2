"""``nas supernet train|sample-accuracy|fit-predictor`` and ``nas extract``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from nas.cli._common import add_count, add_overrides, add_quiet


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
    p.add_argument("--arch", required=True, help="arch JSON file (a point of the supernet's space)")
    p.add_argument("--format", choices=("torch", "onnx", "tflite"), default="torch", help="model file format")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--recalibrate-bn", type=int, default=0, metavar="N",
                   help="re-estimate batch-norm statistics on N training batches of the config's data")
    p.add_argument("--data-root", default=None,
                   help="read the config's dataset from this directory (with --recalibrate-bn)")
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


def _extract(args: argparse.Namespace) -> int:
    from nas.cli._model import read_arch
    from nas.supernet import extract, recalibrate_bn
    from nas.supernet import checkpoint_evaluator, supernet_from_checkpoint

    arch = read_arch(args.arch)
    if args.recalibrate_bn:
        supernet, evaluator = checkpoint_evaluator(args.checkpoint, args.data_root)
        calibration = evaluator.calibration[:args.recalibrate_bn]
        net = recalibrate_bn(extract(supernet, arch), calibration, arch.resolution)
    else:
        supernet = supernet_from_checkpoint(args.checkpoint)
        net = extract(supernet, arch)
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
        if args.format == "onnx":
            export.export_onnx(net, out, shape)
        else:
            export.export_tflite(net, out, shape)
    layout = f"NHWC {[shape[0], shape[2], shape[3], shape[1]]}" if args.format == "tflite" else f"NCHW {list(shape)}"
    print(f"wrote {out} ({args.format}, {arch.short()}, input {layout})")
    return 0
