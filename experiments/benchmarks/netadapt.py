"""NetAdapt against the unpruned winner and uniform width scaling, fine-tuned alike, 3 paired seeds.

    python experiments/benchmarks/netadapt.py [--run runs/compress] [--arch runs/quickstart/best.json]
        [--table runs/tables/local_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv] [--ratio 0.7] [--final-steps 600]
        [--seeds 0 1 2] [--out experiments/benchmarks/netadapt.csv]

1. `nas compress --ratio R` of the winner into --run (skipped when --run holds a finished run; a
   killed one resumes). Its NetAdapt path fine-tuned the network iterations × short_steps steps.
2. The uniform-width baseline: every prunable width of the winner times one factor (channels kept by
   the same L1 rule), the factor whose *measured* latency is nearest the pruned network's.
   The winner, the pruned network and five uniform factors are measured end to end in one batch
   (the table's backend and protocol, 7 passes), so they share the machine's state.
3. Final fine-tuning, same total steps for all three (iterations × short_steps + --final-steps;
   the pruned network has had the first part already), same learning rate, plain (no distillation),
   per seed the same data order: the pruned network, the unpruned winner, the uniform network.
   Top-1 on the 6,000 validation images and on the 10,000 test images (chosen by nothing here).

Prints per-seed test top-1, the paired differences (pruned − unpruned, goal > −1.0 point; pruned −
uniform, goal > 0) with their mean and sample std, and the latencies. Resumable; writes a CSV.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _results import previous_rows, write_csv

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("netadapt", "unpruned", "uniform")


def main(argv: list[str] | None = None) -> int:
    import torch

    from nas import Arch
    from nas.cli import main as nas_main
    from nas.compress import WidthPredictor, copy_weights, load_state, uniform
    from nas.compress._report import FACTORS
    from nas.compress._widths import scale_to
    from nas.latency import LatencyTable, measure_archs
    from nas.supernet import (FinetuneConfig, accuracy, checkpoint_config, checkpoint_evaluator, config_loaders,
                              finetune, load_extracted, recalibrated)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=str(ROOT / "runs/compress"))
    parser.add_argument("--arch", default=str(ROOT / "runs/quickstart/best.json"))
    parser.add_argument("--checkpoint", default=str(ROOT / "experiments/weights/supernet_fmnist.pt"))
    parser.add_argument("--table", default=str(ROOT / "runs/tables/local_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv"))
    parser.add_argument("--ratio", type=float, default=0.7)
    parser.add_argument("--final-steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/netadapt.csv"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = Path(args.run)
    state = load_state(run)
    if not (state and state.get("done") and (run / "pruned.pt").exists()):
        nas_main(["compress", "--checkpoint", args.checkpoint, "--arch", args.arch, "--table", args.table,
                  "--ratio", str(args.ratio), "--out", str(run), "--threads", str(args.threads)])
        state = load_state(run)
    table = LatencyTable.load(run / "table.csv")
    start_arch = Arch.from_dict(state["start"]["arch"])
    pruned = load_extracted(run / "pruned.pt")
    supernet, evaluator = checkpoint_evaluator(args.checkpoint)
    loaders = config_loaders(checkpoint_config(args.checkpoint), max(supernet.space.resolutions))

    def fresh(model: str):  # noqa: ANN202 - a new network each time: fine-tuning changes it in place
        if model == "netadapt":
            return load_extracted(run / "pruned.pt")
        base = recalibrated(supernet, start_arch, evaluator.calibration)
        return base if model == "unpruned" else copy_weights(base, uniform(start_arch, uni_factor))

    path_steps = len(state["iterations"]) * state["config"]["short_steps"]
    total = path_steps + args.final_steps

    rows = previous_rows(args.out, {})
    lat = {r["model"]: float(r["measured_ms"]) for r in rows if r.get("seed") == "latency"}
    uni_factor = next((float(r["factor"]) for r in rows if r.get("model") == "uniform" and r.get("factor")), None)
    if not lat:
        predictor = WidthPredictor(table, pruned.num_classes, pruned.in_channels, run / "work")
        archs = {f: uniform(start_arch, f) for f in FACTORS}
        f0 = scale_to(predictor, start_arch, predictor.predict(pruned.arch), archs)
        near = [f for f in FACTORS if abs(f - f0) <= 0.041]
        measured = measure_archs([start_arch, pruned.arch] + [archs[f] for f in near], supernet.space, table,
                                 run / "work")
        lat = {"unpruned": float(measured[0]), "netadapt": float(measured[1])}
        uni_factor = min(zip(near, measured[2:]), key=lambda fm: abs(fm[1] - lat["netadapt"]))[0]
        lat["uniform"] = float(measured[2 + near.index(uni_factor)])
        rows = [r for r in rows if r.get("seed") != "latency"]
        rows += [{"model": m, "seed": "latency", "factor": uni_factor if m == "uniform" else "", "steps": "",
                  "measured_ms": round(lat[m], 5), "target_ms": round(state["target_ms"], 5), "val_top1": "",
                  "test_top1": "", "seconds": ""} for m in MODELS]
        for f, m in zip(near, measured[2:]):
            print(f"uniform x{f:.2f}: measured {m:.4f} ms")
        write_csv(rows, args.out)
    done = {(r["model"], r["seed"]) for r in rows}
    for seed in args.seeds:
        for model in MODELS:
            if (model, str(seed)) in done:
                continue
            started = time.perf_counter()
            net = fresh(model).to(memory_format=torch.channels_last)
            steps = args.final_steps if model == "netadapt" else total
            finetune(net, loaders.train, FinetuneConfig(steps=steps, lr=args.lr, seed=seed),
                     resolution=net.arch.resolution)
            val, test = (accuracy(net, split, net.arch.resolution) for split in (evaluator.validation, loaders.test))
            rows.append({"model": model, "seed": str(seed), "factor": uni_factor if model == "uniform" else "",
                         "steps": total, "measured_ms": round(lat[model], 5), "target_ms": round(state["target_ms"], 5),
                         "val_top1": round(val, 5), "test_top1": round(test, 5),
                         "seconds": round(time.perf_counter() - started, 1)})
            print(f"seed {seed} {model:9s} val {val:.4f} test {test:.4f} ({rows[-1]['seconds']} s)", flush=True)
            write_csv(rows, args.out)
    by = {(r["model"], r["seed"]): float(r["test_top1"]) for r in rows if r["seed"] != "latency"}
    seeds = [str(s) for s in args.seeds if all((m, str(s)) in by for m in MODELS)]
    print(f"\nlatency (measured end to end, {state['config']['passes']} passes): unpruned {lat['unpruned']:.4f} ms, "
          f"NetAdapt {lat['netadapt']:.4f} ms (target {state['target_ms']:.4f}: "
          f"{'within' if lat['netadapt'] <= state['target_ms'] else 'OVER'}), uniform x{uni_factor:.2f} "
          f"{lat['uniform']:.4f} ms; {len(state['iterations'])} NetAdapt iterations, {total} fine-tuning steps each")
    print(f"{'seed':>4} {'netadapt':>9} {'unpruned':>9} {'uniform':>9}")
    for s in seeds:
        print(f"{s:>4} {by['netadapt', s]:9.4f} {by['unpruned', s]:9.4f} {by['uniform', s]:9.4f}")
    for other, goal in (("unpruned", "goal > -1.0"), ("uniform", "goal > 0")):
        d = np.array([by["netadapt", s] - by[other, s] for s in seeds]) * 100
        if len(d):
            spread = f" ± {d.std(ddof=1):.2f}" if len(d) > 1 else ""
            print(f"NetAdapt − {other}: {d.mean():+.2f}{spread} test points over {len(d)} paired seeds ({goal})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
