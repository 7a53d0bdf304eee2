"""``nas compress``: NetAdapt channel pruning of an extracted subnet to a measured latency target."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli._common import add_quiet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="prune a subnet's channels (NetAdapt) until it measures under a latency "
                                        "target on the table's device; resumable")
    p.add_argument("--checkpoint", required=True, help="supernet checkpoint (the weights, and its config names the data)")
    p.add_argument("--arch", required=True, help="arch JSON file of the subnet (e.g. the search's best.json)")
    p.add_argument("--model", default=None, help="start from this model file (`nas extract --format torch` or "
                                                 "`nas finetune`) instead of the supernet's weights for --arch")
    p.add_argument("--table", required=True, help="latency table of the target device (its backend, threads and "
                                                  "protocol time the widths it lacks; a copy in --out gets them)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--ratio", type=float, help="target: this fraction of the subnet's measured latency")
    target.add_argument("--target-ms", type=float, help="target latency in ms (end to end, the table's device)")
    p.add_argument("--out", required=True, help="run folder (state, each iteration's model, the extended table, "
                                                "pruned.pt, trajectory.csv/png); rerun the command to resume")
    p.add_argument("--step-pct", type=float, default=5.0, help="latency asked off per iteration, %% of the start's")
    p.add_argument("--short-steps", type=int, default=40, help="fine-tuning steps of every candidate")
    p.add_argument("--lr", type=float, default=0.005, help="peak learning rate of the short fine-tunes")
    p.add_argument("--width-step", type=int, default=8, help="widths are multiples of this")
    p.add_argument("--max-cut", type=float, default=0.5,
                   help="the largest share of a width's channels one iteration may remove")
    p.add_argument("--passes", type=int, default=7, help="passes of every end-to-end measurement")
    p.add_argument("--seed", type=int, default=0, help="data order of the fine-tunes")
    p.add_argument("--no-baseline", action="store_true", help="skip the uniform-width baseline of the plot")
    p.add_argument("--recalibrate-bn", type=int, default=8, metavar="N",
                   help="re-estimate the extracted subnet's batch norm on N training batches first (0: keep)")
    p.add_argument("--data-root", default=None, help="read the checkpoint config's dataset from this directory")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for fine-tuning")
    add_quiet(p)
    p.set_defaults(func=_compress)


def _compress(args: argparse.Namespace) -> int:
    import torch

    from nas.cli._model import read_arch
    from nas.compress import (CompressError, Env, NetAdaptConfig, measure_points, netadapt, uniform_baseline,
                              write_trajectory)
    from nas.latency import LatencyTable, warn_if_foreign
    from nas.supernet import (checkpoint_config, checkpoint_evaluator, config_loaders, extract, load_extracted,
                              recalibrated, save_extracted)

    if args.threads:
        torch.set_num_threads(args.threads)
    config = NetAdaptConfig(ratio=args.ratio, target_ms=args.target_ms, step_pct=args.step_pct,
                            short_steps=args.short_steps, lr=args.lr, width_step=args.width_step, max_cut=args.max_cut,
                            passes=args.passes, seed=args.seed)
    out = Path(args.out)
    arch = read_arch(args.arch)
    table = LatencyTable.load(out / "table.csv" if (out / "table.csv").exists() else args.table)
    warning = warn_if_foreign(table)
    if warning:
        print(warning)
    supernet, evaluator = checkpoint_evaluator(args.checkpoint, args.data_root)
    if args.model:
        start = load_extracted(args.model).to(memory_format=torch.channels_last)
        if start.arch != arch:
            raise CompressError(f"--model {args.model!r} holds {start.arch.short()}, not --arch {arch.short()}")
    else:
        supernet.space.validate(arch)
        start = (recalibrated(supernet, arch, evaluator.calibration[:args.recalibrate_bn]) if args.recalibrate_bn
                 else extract(supernet, arch).eval().to(memory_format=torch.channels_last))
    loaders = config_loaders(checkpoint_config(args.checkpoint, args.data_root), max(supernet.space.resolutions))
    env = Env(loaders.train, evaluator.validation, table, supernet.space, out, progress=not args.quiet)
    net, state = netadapt(start, config, env)
    save_extracted(net, out / "pruned.pt")
    (out / "pruned.json").write_text(net.arch.to_json(indent=1) + "\n")
    check, last = state["checks"][-1], (state["iterations"] or [{}])[-1]
    print(f"compress: {len(state['iterations'])} iterations; {net.arch.short()}\n"
          f"  measured {check['measured_ms']:.4f} ms (start {state['start']['measured_ms']:.4f} ms, target "
          f"{state['target_ms']:.4f} ms), predicted {check['predicted_ms']:.4f} ms"
          + (f"; val top-1 after the short fine-tunes {last['val_top1']:.4f}" if last else ""))
    if not args.no_baseline:
        uniform_baseline(start, state, config, env)
    rows = measure_points(state, config, env)
    csv_path, png = write_trajectory(rows, state, out)
    print(f"wrote {out / 'pruned.pt'} (+ pruned.json), {csv_path}, {png}; fine-tune it with "
          f"`nas finetune --checkpoint {args.checkpoint} --model {out / 'pruned.pt'} --out ...`")
    return 0
