"""Does the search pay? Speed-up at matched accuracy, and accuracy at matched latency, over the
hand-designed recipe, per device, measured. One command, resumable (rerun after a stop):

    python experiments/benchmarks/search_pays.py
        [--device ort=runs/tables/local_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv
         --device tflite=runs/tables/local_tflite_t1_ofa_mbv3_r28_w0.5.csv]
        [--trials 100] [--seeds 3] [--sizes 5] [--finetune-steps 300] [--work runs/search_pays]
        [--max-minutes 55] [--out experiments/benchmarks/search_pays.csv]

The quickstart supernet (shipped weights) and space; per device table (built on this machine):
1. Search: evolution (MnasNet soft reward, T = the baselines' median predicted latency) and NSGA-II,
   --seeds seeds each, --trials trials, shared-weight accuracy on 500 validation images.
2. Baseline: the space's `mobilenetv2_style` family (kernel 3, one expand ratio and depth throughout),
   --sizes members spread along the device's predicted latency.
3. Selection on validation only: for each baseline, the searched arch with the lowest predicted
   latency whose shared-weight val accuracy is at least the baseline's (matched accuracy), and the most
   accurate searched arch whose predicted latency is at most the baseline's (matched latency).
4. Every baseline and pick is extracted, BN-recalibrated and fine-tuned the same way
   (`nas.supernet.finetune`, --finetune-steps, seed 0), then scored on the 10,000-image test split,
   which chooses nothing.
5. Every baseline and pick is measured end to end on the device (7 passes, the table's protocol).
Reports per device and baseline size: measured speed-up of the matched-accuracy pick (bounds from the
passes' spread of both measurements) with its test accuracy difference (95% interval, paired over the
test images), and the test accuracy gain of the matched-latency pick at its measured latency ratio.
Prints a table, writes a CSV and a plot (the CSV's name with .png). Run under the CPU lock.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]
SPACE = {"name": "ofa_mbv3", "resolutions": [28], "num_classes": 10, "in_channels": 1, "width_mult": 0.5}
CHECKPOINT = ROOT / "experiments/weights/supernet_fmnist.pt"
Z95 = 1.959964


def _key(arch) -> str:  # noqa: ANN001 - nas.Arch
    return hashlib.sha1(arch.to_json().encode()).hexdigest()[:16]


def _search(device: str, table: str, target_ms: float, args: argparse.Namespace):  # noqa: ANN202
    from nas.experiment import config_from_dict, run_search, trials_table

    raw = {"name": f"pays_{device}", "run_dir": str(Path(args.work) / f"search_{device}"), "seed": 0, "space": SPACE,
           "latency": {"tables": [{"path": table, "name": device}], "target_ms": round(target_ms, 4), "reward": "soft"},
           "strategies": [{"name": "evolution", "options": {"population": 16}}, {"name": "nsga2", "options": {"population": 16}}],
           "evaluator": {"name": "supernet", "options": {"checkpoint": str(CHECKPOINT), "val_limit": 500}},
           "search": {"n_trials": args.trials, "seeds": args.seeds, "progress": False}}
    config = config_from_dict(raw)
    run_search(config)
    df = trials_table(config)
    return df[df.state == "COMPLETE"].drop_duplicates("arch")


def _picks(trials, col: str, base_acc: float, base_ms: float) -> tuple[str | None, str | None]:  # noqa: ANN001
    """(matched-accuracy pick, matched-latency pick) arch JSONs, chosen on validation only."""
    as_good = trials[trials.accuracy >= base_acc].sort_values([col, "accuracy"], ascending=[True, False])
    as_fast = trials[trials[col] <= base_ms].sort_values(["accuracy", col], ascending=[False, True])
    return (as_good.arch.iloc[0] if len(as_good) else None), (as_fast.arch.iloc[0] if len(as_fast) else None)


def _finetuned(arch, cache: Path, supernet, evaluator, loaders, steps: int) -> dict:  # noqa: ANN001
    """Test-split correctness per image (and val top-1) of `arch` fine-tuned from the supernet; cached."""
    import torch

    from nas.supernet import FinetuneConfig, extract, finetune, recalibrate_bn, resize

    path = cache / f"{_key(arch)}_{steps}.npz"
    if not path.is_file():
        net = recalibrate_bn(extract(supernet, arch).to(memory_format=torch.channels_last), evaluator.calibration,
                             arch.resolution)
        finetune(net, loaders.train, FinetuneConfig(steps=steps, seed=0), resolution=arch.resolution)
        with torch.no_grad():
            test = np.concatenate([(net(resize(x, arch.resolution)).argmax(1) == y).numpy() for x, y in loaders.test])
            val = np.concatenate([(net(resize(x, arch.resolution)).argmax(1) == y).numpy()
                                  for x, y in evaluator.validation])
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, test=test, val=val)
        tmp.replace(path)
    data = np.load(path)
    return {"test": data["test"].astype(bool), "val_top1": float(data["val"].mean())}


def _measured(device: str, table, archs: list, space, work: Path) -> dict[str, tuple[float, float]]:  # noqa: ANN001
    """arch JSON -> (measured ms, spread %) on the device, 7 passes; cached per device."""
    from nas.latency import measure_archs

    path = work / f"measured_{device}.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    todo = [a for a in dict.fromkeys(archs) if a.to_json() not in done]
    if todo:
        spreads: list[float] = []
        ms = measure_archs(todo, space, table, work / f"measure_{device}", progress=False, spreads=spreads, passes=7)
        done.update({a.to_json(): (float(m), float(s)) for a, m, s in zip(todo, ms, spreads)})
        path.write_text(json.dumps(done))
    return {k: tuple(v) for k, v in done.items()}


def _diff_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Paired test accuracy difference a − b (points) and its 95% half-width."""
    d = a.astype(float) - b.astype(float)
    return 100 * d.mean(), 100 * Z95 * d.std(ddof=1) / np.sqrt(len(d))


def main(argv: list[str] | None = None) -> int:
    import torch

    import nas
    from nas.evaluators import SupernetEvaluator, TableLatency
    from nas.latency import LatencyTable
    from nas.supernet import checkpoint_config, checkpoint_evaluator, config_loaders

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", action="append", dest="devices", metavar="NAME=TABLE")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sizes", type=int, default=5)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default=str(ROOT / "runs/search_pays"))
    parser.add_argument("--max-minutes", type=float, default=55.0, help="stop fine-tuning (resumably) after this long")
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/search_pays.csv"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    devices = dict(d.split("=", 1) for d in (args.devices or [
        "ort=runs/tables/local_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv",
        "tflite=runs/tables/local_tflite_t1_ofa_mbv3_r28_w0.5.csv"]))
    work = Path(args.work)
    (work / "finetuned").mkdir(parents=True, exist_ok=True)
    space = nas.load_space(SPACE["name"], **{k: v for k, v in SPACE.items() if k != "name"})
    family = space.preset_family("mobilenetv2_style", resolution=28)
    supernet, shared = checkpoint_evaluator(str(CHECKPOINT))
    loaders = config_loaders(checkpoint_config(str(CHECKPOINT)), 28)
    plan = {}
    for device, path in devices.items():
        table = LatencyTable.load(ROOT / path if not Path(path).is_absolute() else path)
        source = TableLatency(table, space, name=device)
        evaluator = SupernetEvaluator.from_checkpoint(space, [source], checkpoint=str(CHECKPOINT), val_limit=500)
        pred = source.predict_many(family)
        order = np.argsort(pred)
        sizes = [family[order[int(round(i))]] for i in np.linspace(0, len(family) - 1, args.sizes)]
        base = {a: evaluator.evaluate(a) for a in dict.fromkeys(sizes)}
        target = float(np.median([r.latency(device) for r in base.values()]))
        t0 = time.perf_counter()
        trials = _search(device, path, target, args)
        print(f"{device}: search done ({len(trials)} distinct archs, {time.perf_counter() - t0:.0f} s this run); "
              f"T = {target:.4f} ms", flush=True)
        col = f"latency_ms[{device}]"
        rows = []
        for a, r in base.items():
            fast, good = _picks(trials, col, r.accuracy, r.latency(device))
            rows.append({"baseline": a, "base_val_shared": r.accuracy, "base_pred_ms": r.latency(device),
                         "matched_acc": nas.Arch.from_json(fast) if fast else None,
                         "matched_lat": nas.Arch.from_json(good) if good else None,
                         "search_trials": len(trials)})
        plan[device] = (table, rows)
    tuned: dict = {}
    archs = list(dict.fromkeys(a for _, rows in plan.values() for r in rows
                               for a in (r["baseline"], r["matched_acc"], r["matched_lat"]) if a is not None))
    for i, arch in enumerate(archs):
        if time.perf_counter() - started > args.max_minutes * 60:
            print(f"stopping after {args.max_minutes} min with {i} of {len(archs)} fine-tuned; rerun to continue")
            return 3
        t0 = time.perf_counter()
        tuned[arch] = _finetuned(arch, work / "finetuned", supernet, shared, loaders, args.finetune_steps)
        print(f"fine-tuned {i + 1}/{len(archs)}: test {tuned[arch]['test'].mean():.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    out = []
    for device, (table, rows) in plan.items():
        wanted = [a for r in rows for a in (r["baseline"], r["matched_acc"], r["matched_lat"]) if a is not None]
        ms = _measured(device, table, wanted, space, work)
        for r in rows:
            b = r["baseline"]
            bms, bspread = ms[b.to_json()]
            row = {"device": device, "baseline": b.short(), "base_mmacs": round(nas.count_macs(b, 10, 1) / 1e6, 2),
                   "base_val_shared": round(r["base_val_shared"], 4),
                   "base_test": round(float(tuned[b]["test"].mean()), 4), "base_ms": round(bms, 4),
                   "search_trials": r["search_trials"]}
            for kind in ("matched_acc", "matched_lat"):
                p = r[kind]
                if p is None:
                    row[f"{kind}_arch"] = "(none)"
                    continue
                pms, pspread = ms[p.to_json()]
                d, half = _diff_ci(tuned[p]["test"], tuned[b]["test"])
                bound = (bspread + pspread) / 200  # half of each measurement's pass range, as a fraction
                row.update({f"{kind}_arch": p.short(), f"{kind}_test": round(float(tuned[p]["test"].mean()), 4),
                            f"{kind}_ms": round(pms, 4), f"{kind}_speedup": round(bms / pms, 3),
                            f"{kind}_speedup_low": round(bms / pms * (1 - bound), 3),
                            f"{kind}_speedup_high": round(bms / pms * (1 + bound), 3),
                            f"{kind}_test_diff_pt": round(d, 2), f"{kind}_test_diff_ci95_pt": round(half, 2)})
            out.append(row)
    print(f"\n{'device':7s} {'baseline':>12s} {'base test':>9s} {'base ms':>8s} | {'speed-up at matched acc':>24s} "
          f"{'test diff (95%)':>16s} | {'acc gain at matched lat':>24s} {'ms ratio':>8s}")
    for r in out:
        mid = f"{r['base_mmacs']:.1f}M MACs"
        sp = (f"{r['matched_acc_speedup']:.2f}x [{r['matched_acc_speedup_low']:.2f}, {r['matched_acc_speedup_high']:.2f}]"
              if "matched_acc_speedup" in r else "(none)")
        dd = f"{r['matched_acc_test_diff_pt']:+.2f} ± {r['matched_acc_test_diff_ci95_pt']:.2f}" if "matched_acc_speedup" in r else ""
        gain = f"{r['matched_lat_test_diff_pt']:+.2f} ± {r['matched_lat_test_diff_ci95_pt']:.2f} pt" \
            if "matched_lat_speedup" in r else "(none)"
        ratio = f"{1 / r['matched_lat_speedup']:.3f}" if "matched_lat_speedup" in r else ""
        print(f"{r['device']:7s} {mid:>12s} {r['base_test']:9.4f} {r['base_ms']:8.4f} | {sp:>24s} {dd:>16s} | "
              f"{gain:>24s} {ratio:>8s}")
    write_csv(out, args.out, fieldnames=list(dict.fromkeys(k for r in out for k in r)))
    _plot(out, plan, tuned, work, Path(args.out).with_suffix(".png"))
    print(f"{time.perf_counter() - started:.0f} s in all (this run)")
    return 0


def _plot(rows: list[dict], plan: dict, tuned: dict, work: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(plan), figsize=(6.5 * len(plan), 4.8), squeeze=False)
    for ax, (device, (_, prow)) in zip(axes.flat, plan.items()):
        ms = {k: v[0] for k, v in json.loads((work / f"measured_{device}.json").read_text()).items()}

        def point(a):  # noqa: ANN001, ANN202 - (ms, top-1 %, its binomial 95% half-width)
            p = tuned[a]["test"].mean()
            return ms[a.to_json()], 100 * p, 100 * Z95 * np.sqrt(p * (1 - p) / len(tuned[a]["test"]))

        base = sorted(point(r["baseline"]) for r in prow)
        x, y, e = zip(*base)
        ax.errorbar(x, y, yerr=e, fmt="k-o", capsize=3, label="mobilenetv2_style (hand-designed)")
        for kind, marker, label in (("matched_acc", "^", "searched, matched accuracy"),
                                    ("matched_lat", "s", "searched, matched latency")):
            pts = list(dict.fromkeys(point(r[kind]) for r in prow if r[kind] is not None))
            if pts:
                x, y, e = zip(*pts)
                ax.errorbar(x, y, yerr=e, fmt=marker, ms=7, capsize=3, label=label, zorder=5)
        ax.set_title(f"{device}: fine-tuned test top-1 vs measured latency")
        ax.set_xlabel("measured latency (ms, 7 passes)")
        ax.set_ylabel("test top-1 (%, bars: binomial 95% of 10,000 images)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
