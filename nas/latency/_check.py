"""Does a table hold on this machine? Canaries, the noise floor, and the MATCH / DRIFT / REBUILD check.

Canaries are a small fixed set of whole networks (the space's presets and two fixed random archs,
at the table's largest resolution) measured end to end when a table is built and stored in its
metadata. `check_table` compares the table's fingerprint with this machine's, re-measures the
canaries with the table's own backend, threads, protocol and pass count, and gives one verdict:

* MATCH: same machine fingerprint; the canaries' common factor within the match tolerance of 1
  and each canary within the uniform tolerance of that factor;
* DRIFT: the canaries moved by one common factor (or the machine differs but the timings agree):
  `rescale` folds the factor into a copy of the table's calibration;
* REBUILD: the canaries disagree with each other: the cost structure differs; build a new table.

The tolerances widen with the noise floor (the spread of the canaries' repeated passes), so a
noisy machine is not mistaken for a different one.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from nas._arch import Arch
from nas._device import FieldDiff, describe, fingerprint, fingerprint_diff
from nas.latency._table import Calibration, LatencyTable, TableError, today
from nas.latency._validate import default_work, measure_archs
from nas.latency._work import arch_id

if TYPE_CHECKING:  # pragma: no cover
    from nas._space import SearchSpace

CANARY_SEED = 7000
CANARY_RANDOM = 2
CANARY_PASSES = 5
MATCH_PCT = 5.0
"""The canaries' common factor within this many percent of 1 matches (before widening for noise).
Set from 10 repeated checks on the machine that built a table (`check_repeat.py`, series A: the
factor stayed within 3.8% of 1, under a noise floor of up to 28%)."""
UNIFORM_PCT = 6.0
"""Canaries whose ratios sit within this many percent of their common factor drift uniformly."""
NOISY_PCT = 5.0
"""A noise floor (median spread of repeated canary passes) above this is too noisy for a table."""
MAX_TOLERANCE_PCT = 10.0
"""The tolerances widen with the noise floor up to this; past it the check says it cannot tell."""

CHECK_RUNS = 3
"""Least calls per repeat when the check re-measures the canaries (the build's protocol says 10).
A repeat still fills the protocol's `min_repeat_ms`, so only networks slower than a few ms take
fewer calls: an 80 ms canary takes 15 timed calls a pass instead of 50, which keeps a check of a
224 px TFLite table within a minute. Same median per call (`check_runs.py` compares the two)."""

EXIT_CODES = {"MATCH": 0, "DRIFT": 3, "REBUILD": 4}


def table_fingerprint(table: LatencyTable) -> dict[str, Any] | None:
    return table.metadata.get("fingerprint")


def here_fingerprint(table: LatencyTable) -> dict[str, Any]:
    """This machine's fingerprint with the table's runtime (backend, this machine's version, threads)."""
    return fingerprint(table.metadata["backend"], int(table.metadata["threads"]))


def machine_diffs(table: LatencyTable) -> list[FieldDiff]:
    """The major fields in which the table's machine and runtime differ from this one."""
    try:
        here = here_fingerprint(table)
    except Exception:  # noqa: BLE001 - the runtime is missing here: compare the machine alone
        here = fingerprint()
    return [d for d in fingerprint_diff(table_fingerprint(table), here) if d.major]


def machine_warning(table: LatencyTable) -> str | None:
    """One line when the table was measured on another machine or runtime (None when it matches)."""
    diffs = machine_diffs(table)
    if not diffs:
        return None
    shown = "; ".join(d.describe() for d in diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
    return (f"latency table {table.where} was measured on another machine or runtime "
            f"({describe(table_fingerprint(table))}); differs here in {shown}. Its predictions may not hold "
            f"on this machine: run `nas latency check --table {table.where}`")


_warned: set[str] = set()


def warn_if_foreign(table: LatencyTable) -> str | None:
    """Print `machine_warning` on stderr, once per table and process; returns it (None: same machine)."""
    import sys

    message = machine_warning(table)
    if message and table.where not in _warned:
        _warned.add(table.where)
        print(f"warning: {message}", file=sys.stderr, flush=True)
    return message


# ---------------------------------------------------------------------- canaries
def canary_archs(space: "SearchSpace") -> list[tuple[str, Arch]]:
    """The space's presets and `CANARY_RANDOM` fixed random archs, at its largest resolution."""
    r = max(space.resolutions)
    out: list[tuple[str, Arch]] = []
    for name in space.preset_names:
        try:
            out.append((name, space.preset(name, resolution=r)))
        except Exception:  # noqa: BLE001 - a preset that is not a point of this (custom) space
            continue
    rng = np.random.default_rng(CANARY_SEED)
    fixed = 0
    for _ in range(1000):
        if fixed == CANARY_RANDOM:
            break
        arch = space.sample(rng)
        if arch.resolution == r:
            fixed += 1
            out.append((f"fixed-{fixed}", arch))
    return out


def measure_canaries(table: LatencyTable, space: "SearchSpace", passes: int = CANARY_PASSES,
                     work: str | Path | None = None, progress: bool = True,
                     archs: Sequence[tuple[str, Arch]] | None = None, runs: int | None = None) -> dict[str, Any]:
    """Measure the canaries here with the table's backend, threads and protocol (`runs`: fewer calls
    per repeat for slow networks, see `CHECK_RUNS`): the record stored as ``metadata["canaries"]``
    (date, passes, noise floor, each canary's arch and latency)."""
    archs = list(archs if archs is not None else canary_archs(space))
    spreads: list[float] = []
    work = Path(work) if work else default_work(table, "canaries")
    measured = measure_archs([a for _, a in archs], space, table, work, progress, spreads=spreads, passes=passes,
                             runs=runs)
    return canary_record(space, archs, measured, spreads, passes)


def canary_record(space: "SearchSpace", archs: Sequence[tuple[str, Arch]], measured_ms: Sequence[float],
                  spreads: Sequence[float], passes: int) -> dict[str, Any]:
    """``metadata["canaries"]`` from named archs measured here (latency and pass spread of each)."""
    return {"date": today(), "passes": passes, "noise_pct": round(float(np.median(spreads)), 3),
            "archs": [{"name": n, "id": arch_id(a, space.num_classes, space.in_channels), "arch": a.to_json(),
                       "latency_ms": float(m), "spread_pct": round(float(s), 3)}
                      for (n, a), m, s in zip(archs, measured_ms, spreads)]}


def noise_floor(table: LatencyTable, space: "SearchSpace", passes: int = CANARY_PASSES,
                work: str | Path | None = None, progress: bool = False) -> float:
    """The machine's current noise: median spread (%) of repeated passes over the fixed canaries."""
    fixed = [(n, a) for n, a in canary_archs(space) if n.startswith("fixed-")]
    record = measure_canaries(table, space, passes, work or default_work(table, "noise"), progress, fixed)
    return float(record["noise_pct"])


# ---------------------------------------------------------------------- the check
@dataclass
class CheckResult:
    """The verdict of `check_table`, with everything it was based on."""

    verdict: str
    reason: str
    factor: float
    rows: list[dict[str, Any]]
    diffs: list[FieldDiff]
    noise_here_pct: float
    noise_table_pct: float
    match_pct: float
    uniform_pct: float
    here: dict[str, Any]
    canaries_here: dict[str, Any] | None = None
    build_command: str | None = None
    build_estimate_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def tolerances(noise_here_pct: float, noise_table_pct: float) -> tuple[float, float]:
    """(match %, uniform %): the base tolerances, widened to a third of the larger noise floor. The
    noise floor is the range of one network's pass medians; the median over 5-7 passes moves by
    about a quarter of that range, and a ratio of two such medians by about a third."""
    noise = min(max(noise_here_pct, noise_table_pct) / 3.0, MAX_TOLERANCE_PCT)
    return max(MATCH_PCT, noise), max(UNIFORM_PCT, noise)


def judge(ratios: Sequence[float], diffs: Sequence[FieldDiff], match_pct: float, uniform_pct: float
          ) -> tuple[str, str, float]:
    """(verdict, reason, factor) from the canaries' here/table ratios and the fingerprint diffs."""
    r = np.asarray(ratios, dtype=float)
    factor = float(np.exp(np.mean(np.log(r))))
    off = np.abs(r / factor - 1.0) * 100
    worst = float(off.max())
    if worst > uniform_pct:
        return ("REBUILD", f"the canaries moved by different factors ({r.min():.2f}x to {r.max():.2f}x; "
                f"{worst:.1f}% from their common factor > {uniform_pct:.1f}%): the cost structure differs", factor)
    moved = abs(factor - 1.0) * 100
    if diffs:
        return ("DRIFT", f"another machine or runtime ({len(diffs)} field(s) differ); the canaries moved by one "
                f"factor {factor:.3f} (within {worst:.1f}%)", factor)
    if moved > match_pct:
        return ("DRIFT", f"same machine fingerprint, but the canaries run {factor:.3f}x the recorded latency "
                f"({moved:.1f}% > {match_pct:.1f}%), uniformly (within {worst:.1f}%)", factor)
    return ("MATCH", f"same machine fingerprint; the canaries run {factor:.3f}x the recorded latency (within "
            f"{match_pct:.1f}%), each within {worst:.1f}% of that", factor)


def check_table(table: LatencyTable, space: "SearchSpace", work: str | Path | None = None,
                progress: bool = True) -> CheckResult:
    """Compare fingerprints, re-measure the canaries, and give the verdict."""
    here = here_fingerprint(table)
    diffs = [d for d in fingerprint_diff(table_fingerprint(table), here) if d.major]
    canaries = table.metadata.get("canaries")
    if not canaries or not canaries.get("archs"):
        result = CheckResult("REBUILD", "the table records no canaries, so its timings cannot be compared with "
                             "this machine's" + ("" if not diffs else f", and {len(diffs)} machine field(s) differ"),
                             float("nan"), [], diffs, float("nan"), float("nan"), MATCH_PCT, UNIFORM_PCT, here)
        return _with_build_command(result, table, space)
    archs = [(c["name"], Arch.from_json(c["arch"])) for c in canaries["archs"]]
    record = measure_canaries(table, space, int(canaries.get("passes", CANARY_PASSES)), work, progress, archs,
                              runs=CHECK_RUNS)
    rows = []
    for old, new in zip(canaries["archs"], record["archs"]):
        rows.append({"name": old["name"], "table_ms": float(old["latency_ms"]), "here_ms": new["latency_ms"],
                     "ratio": new["latency_ms"] / float(old["latency_ms"]), "spread_pct": new["spread_pct"]})
    noise_table = float(canaries.get("noise_pct") or 0.0)
    match_pct, uniform_pct = tolerances(record["noise_pct"], noise_table)
    verdict, reason, factor = judge([r["ratio"] for r in rows], diffs, match_pct, uniform_pct)
    result = CheckResult(verdict, reason, factor, rows, diffs, record["noise_pct"], noise_table, match_pct,
                         uniform_pct, here, record)
    if record["noise_pct"] > NOISY_PCT:
        capped = record["noise_pct"] / 3.0 > MAX_TOLERANCE_PCT
        result.notes.append(f"this machine is noisy now: the canaries' passes spread by a median "
                            f"{record['noise_pct']:.1f}% (> {NOISY_PCT:g}%); the tolerances widened to "
                            f"{match_pct:.1f}% / {uniform_pct:.1f}%"
                            + (" (their cap): too noisy to tell a drift from a changed cost structure"
                               if capped else "") + ". Check again on a quieter machine.")
    return _with_build_command(result, table, space) if verdict == "REBUILD" else result


def build_command(table: LatencyTable, device_name: str | None = None) -> str:
    """The `nas latency build` command that rebuilds `table` on this machine."""
    meta = table.metadata
    sp = meta.get("space") or {}
    name = sp.get("name", "?") if sp.get("source") in (None, f"{sp.get('name')}.yaml") else sp.get("source")
    args = ["nas", "latency", "build", "--space", str(name)]
    if sp.get("resolutions"):
        args += ["--resolutions", *[str(r) for r in sp["resolutions"]]]
    for flag, key in (("--num-classes", "num_classes"), ("--in-channels", "in_channels"),
                      ("--width-mult", "width_mult")):
        if sp.get(key) is not None:
            args += [flag, str(sp[key])]
    args += ["--backend", str(meta["backend"]), "--threads", str(meta["threads"]),
             "--device-name", device_name or "local"]
    proto = meta.get("protocol") or {}
    if proto.get("passes", 3) != 3:
        args += ["--passes", str(proto["passes"])]
    if meta.get("dtype", "float32") != "float32":
        args += ["--dtype", str(meta["dtype"])]
    if (meta.get("backend_options") or {}).get("channels_last"):
        args.append("--channels-last")
    return " ".join(shlex.quote(a) for a in args)


def _with_build_command(result: CheckResult, table: LatencyTable, space: "SearchSpace") -> CheckResult:
    result.build_command = build_command(table)
    seconds = (table.metadata.get("build") or {}).get("seconds")
    if seconds:
        factor = result.factor if math.isfinite(result.factor) else 1.0
        result.build_estimate_s = float(seconds) * max(factor, 1.0)
    return result


def rescale(table: LatencyTable, result: CheckResult, out: str | Path) -> LatencyTable:
    """A copy of `table` with the check's factor folded into its calibration, this machine's
    fingerprint and canaries, and a record of why. Refused unless the verdict is DRIFT or MATCH."""
    if result.verdict == "REBUILD" or not math.isfinite(result.factor):
        raise TableError(f"latency table {table.where}: the check says REBUILD ({result.reason}); one factor "
                         "cannot repair it")
    g = result.factor
    cal = table.calibration or Calibration()
    scaled = Calibration(cal.scale * g, cal.per_layer_ms * g, cal.offset_ms * g, cal.per_mparam_ms * g,
                         cal.cache_mparams, cal.spill_families, **cal.info)
    copy = LatencyTable({k: table.entry(k) for k in table.keys()}, dict(table.metadata))
    copy.set_calibration(scaled)
    copy.metadata["fingerprint"] = result.here
    copy.metadata["canaries"] = result.canaries_here
    copy.metadata["rescaled"] = {"from": table.where, "factor": g, "date": today(), "verdict": result.verdict,
                                 "reason": result.reason, "from_fingerprint": table_fingerprint(table),
                                 "ratios": {r["name"]: round(r["ratio"], 4) for r in result.rows}}
    copy.save(out)
    return copy


def format_check(result: CheckResult, table: LatencyTable) -> str:
    """The check as text: machines, the canary table, the noise floor, the verdict."""
    lines = [f"table   {table.where}", f"  built on  {describe(table_fingerprint(table))}",
             f"  here      {describe(result.here)}"]
    if result.diffs:
        lines.append("  differs   " + "; ".join(d.describe() for d in result.diffs))
    if result.rows:
        lines.append(f"{'canary':22s} {'table ms':>10s} {'here ms':>10s} {'ratio':>7s} {'spread':>7s}")
        for r in result.rows:
            lines.append(f"{r['name']:22s} {r['table_ms']:10.4f} {r['here_ms']:10.4f} {r['ratio']:7.3f} "
                         f"{r['spread_pct']:6.1f}%")
        lines.append(f"noise floor: {result.noise_here_pct:.1f}% here, {result.noise_table_pct:.1f}% when recorded; "
                     f"tolerances: match {result.match_pct:.1f}%, uniform {result.uniform_pct:.1f}%")
    lines += result.notes
    lines.append(f"verdict: {result.verdict}: {result.reason}")
    if result.verdict == "DRIFT":
        lines.append(f"  `nas latency check --table {table.where} --rescale` writes a copy with the factor "
                     f"{result.factor:.3f} folded into its calibration")
    if result.verdict == "REBUILD" and result.build_command:
        est = (f" (about {result.build_estimate_s / 60:.1f} min, from the {table.metadata['build']['seconds']:.0f} s "
               "the build took on its machine)" if result.build_estimate_s else "")
        lines.append(f"  rebuild on this machine{est}:\n    {result.build_command}")
        lines.append(f"  then: nas latency calibrate --table <new table> --n 60   (or `nas latency adapt --table "
                     f"{table.where} --n 30` to refit this table's layer families from 30 networks)")
    return "\n".join(lines)
