"""``nas finetune``: fine-tune an extracted subnet, optionally distilled from a teacher."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nas.cli._common import add_quiet
from nas.cli._model import add_subnet_source


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a subnet extracted from a supernet (optionally distilled from "
                                        "the supernet's largest subnet or another model); resumable")
    p.add_argument("--checkpoint", required=True, help="supernet checkpoint (its config names the data)")
    add_subnet_source(p, "fine-tune this model file instead (`nas extract --format torch`, `nas compress`'s "
                         "pruned.pt, `nas finetune`); its arch is its own")
    p.add_argument("--out", required=True, help="the fine-tuned model (`nas extract --format torch` format), "
                                                "with <out>.json beside it (settings and accuracy)")
    p.add_argument("--steps", type=int, default=500, help="SGD steps")
    p.add_argument("--lr", type=float, default=0.01, help="peak learning rate (cosine to 0)")
    p.add_argument("--seed", type=int, default=0, help="data order, augmentation and torch's RNG")
    p.add_argument("--distill", nargs="?", const="largest", default=None, metavar="TEACHER",
                   help="add a distillation term: soft targets of TEACHER (`largest`: the supernet's largest "
                        "subnet, BN recalibrated; or a model file from `nas extract`/`nas finetune`)")
    p.add_argument("--kd-weight", type=float, default=1.0, help="--distill: weight of the KL term")
    p.add_argument("--temperature", type=float, default=1.0, help="--distill: softmax temperature T")
    p.add_argument("--recalibrate-bn", type=int, default=8, metavar="N",
                   help="re-estimate the subnet's batch norm on N training batches before fine-tuning (0: keep "
                        "the supernet's statistics)")
    p.add_argument("--evaluate", nargs="?", const="val", choices=("val", "test"), default=None, metavar="SPLIT",
                   help="top-1 on SPLIT (val | test; default val) before and after fine-tuning")
    p.add_argument("--data-root", default=None, help="read the checkpoint config's dataset from this directory")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_quiet(p)
    p.set_defaults(func=_finetune)


def _teacher(spec: str, supernet: Any, calibration: list[Any]) -> tuple[Any, str]:
    from nas.supernet import largest_arch, load_extracted, recalibrated

    if spec == "largest":
        arch = largest_arch(supernet.space)
        return recalibrated(supernet, arch, calibration), f"largest subnet ({arch.short()})"
    if not Path(spec).is_file():
        from nas._errors import HwnasError

        raise HwnasError(f"--distill: {spec!r} is neither 'largest' nor a model file")
    return load_extracted(spec), spec


def _finetune(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from nas.cli._model import load_subnet
    from nas.supernet import (FinetuneConfig, accuracy, checkpoint_config, checkpoint_evaluator, config_loaders,
                              finetune, recalibrate_bn, save_extracted)

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        settings = FinetuneConfig(steps=args.steps, lr=args.lr, seed=args.seed, kd_temperature=args.temperature,
                                  kd_weight=args.kd_weight if args.distill else 0.0)
    except ValueError as err:
        from nas._errors import HwnasError

        raise HwnasError(str(err)) from None
    supernet, evaluator = checkpoint_evaluator(args.checkpoint, args.data_root)
    net = load_subnet(args, supernet).to(memory_format=torch.channels_last)  # the fast layout for depthwise convs
    arch = net.arch
    if args.recalibrate_bn:
        net = recalibrate_bn(net, evaluator.calibration[:args.recalibrate_bn], arch.resolution)
    teacher, teacher_name = (None, None) if not args.distill else _teacher(args.distill, supernet, evaluator.calibration)
    config = checkpoint_config(args.checkpoint, args.data_root)
    loaders = config_loaders(config, max(supernet.space.resolutions))
    split = None if args.evaluate is None else (evaluator.validation if args.evaluate == "val" else loaders.test)
    before = None if split is None else accuracy(net, split, arch.resolution)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=settings.steps, desc="finetune", unit="step", disable=args.quiet, dynamic_ncols=True)

    def step(done: int, loss: float) -> None:
        bar.n = done
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.refresh()

    try:
        finetune(net, loaders.train, settings, resolution=arch.resolution, teacher=teacher,
                 resume=out.with_name(out.name + ".resume.pt"), on_step=step)
    finally:
        bar.close()
    save_extracted(net, out)
    record: dict[str, Any] = {"arch": arch.to_dict(), "checkpoint": args.checkpoint, "model": args.model, "finetune": settings.to_dict(),
                              "teacher": teacher_name, "recalibrate_bn": args.recalibrate_bn}
    if split is not None:
        after = accuracy(net, split, arch.resolution)
        record["accuracy"] = {"split": args.evaluate, "before": before, "after": after}
        print(f"{args.evaluate} top-1: {before:.4f} before, {after:.4f} after {settings.steps} steps"
              + (f" distilled from {teacher_name}" if teacher_name else ""))
    from nas._atomic import atomic_write

    atomic_write(out.with_name(out.name + ".json"), json.dumps(record, indent=1) + "\n")
    print(f"wrote {out} ({arch.short()})", file=sys.stdout)
    return 0
