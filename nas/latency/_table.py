"""`LatencyTable`: measured per-layer latencies of one device + backend, with a calibrated predictor.

On disk a table is a CSV (one column per `BlockKey` field, then latency_ms, mean_ms, std_ms,
p90_ms, count, passes, spread_pct, remeasured, flagged) and a JSON sidecar of the same name with the
metadata: device, backend and version, threads, batch size, dtype, CPU model, date, tool version,
the timing protocol, the space it covers, and the calibration once fitted.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from nas._arch import Arch, ArchError, BlockKey, key_mparams
from nas._device import (COLUMNS, FORMAT_VERSION, HEADERS, STAT_COLUMNS, key_from_row, sha256_text, sidecar_path, utc_now,
                         write_table)
from nas._errors import HwnasError
from nas.latency._predict import CompiledPredictor, check_slots_exact, layer_family

if TYPE_CHECKING:  # pragma: no cover
    from nas._space import SearchSpace

REQUIRED_METADATA = ("format_version", "backend", "backend_version", "threads", "batch_size", "dtype",
                     "device_name", "entries", "csv_sha256", "protocol")


class TableError(HwnasError):
    """A latency table file is missing, corrupt, or does not match its metadata or a space."""


class MissingKeyError(TableError, KeyError):
    """A layer is not in the latency table (the message names the layer and the table file)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class Calibration:
    """measured ≈ scale·sum + per_layer_ms·layers + per_mparam_ms·max(0, Mweights − cache_mparams) + offset_ms.

    sum: the summed table entries; layers: the layer count (absorbs the per-call overhead each
    isolated entry carries); Mweights: the network's weights in millions, counting the layers of
    `spill_families` only (None: every layer; see `layer_family`). An isolated layer always finds
    its weights in the cache; a whole network whose weights exceed the cache streams them from
    memory at every inference, so past `cache_mparams` each extra weight costs time. Some layer
    families stream their weights at the same cost isolated or not (on x86 ONNX Runtime, MnasNet's
    full convs on 1×1 maps), so the fit also chooses which families count: every family, or all but
    one. The knee and the families are chosen by a grid search, the other terms by least squares on
    relative error, on whole networks measured end to end.
    """

    def __init__(self, scale: float = 1.0, per_layer_ms: float = 0.0, offset_ms: float = 0.0,
                 per_mparam_ms: float = 0.0, cache_mparams: float = 0.0,
                 spill_families: Sequence[str] | None = None, **info: Any) -> None:
        self.scale, self.per_layer_ms, self.offset_ms = float(scale), float(per_layer_ms), float(offset_ms)
        self.per_mparam_ms, self.cache_mparams = float(per_mparam_ms), float(cache_mparams)
        self.spill_families = None if spill_families is None else tuple(sorted(spill_families))
        self.info = info

    def apply(self, summed_ms: Any, layers: Any, mparams: Any = 0.0) -> Any:
        """The calibrated latency; `mparams`: the weights of the layers of `spill_families`."""
        excess = mparams - self.cache_mparams
        if hasattr(excess, "clamp"):  # a torch tensor: keep the graph
            excess = excess.clamp(min=0.0)
        else:
            excess = np.maximum(excess, 0.0)
        return self.scale * summed_ms + self.per_layer_ms * layers + self.per_mparam_ms * excess + self.offset_ms

    def network_mparams(self, keys: Iterable[BlockKey]) -> float:
        """The weights (millions) this calibration counts in a network of layers `keys`."""
        return float(sum(key_mparams(k) for k in keys
                         if self.spill_families is None or layer_family(k) in self.spill_families))

    def describe(self) -> str:
        families = "" if self.spill_families is None else f" of {'+'.join(self.spill_families)}"
        return (f"{self.scale:.4f} x sum {self.per_layer_ms:+.5f} ms x layers {self.per_mparam_ms:+.5f} ms x "
                f"max(0, Mweights{families} - {self.cache_mparams:.2f}) {self.offset_ms:+.4f} ms")

    def to_dict(self) -> dict[str, Any]:
        return {"model": "linear-knee", "scale": self.scale, "per_layer_ms": self.per_layer_ms,
                "per_mparam_ms": self.per_mparam_ms, "cache_mparams": self.cache_mparams,
                "spill_families": None if self.spill_families is None else list(self.spill_families),
                "offset_ms": self.offset_ms, **self.info}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        data = dict(data)
        if data.pop("model", "linear-knee") not in ("linear", "linear-knee"):
            raise TableError(f"unknown calibration model in {data!r}")
        return cls(**data)

    @classmethod
    def fit(cls, summed_ms: Sequence[float], layers: Sequence[float],
            mparams: Sequence[float] | Mapping[str, Sequence[float]], measured_ms: Sequence[float],
            **info: Any) -> "Calibration":
        """Fit on whole-network measurements (relative least squares). `mparams`: the networks'
        weights, or a mapping layer family -> weights of that family's layers (then the fit also
        chooses which families count). With fewer than 12 networks, or too similar ones to pin down
        every term, one scale factor."""
        s, n, y = (np.asarray(v, dtype=float) for v in (summed_ms, layers, measured_ms))
        if len(y) == 0:
            raise TableError("calibration needs at least one measured network")
        by_family = ({str(f): np.asarray(v, dtype=float) for f, v in mparams.items()}
                     if isinstance(mparams, Mapping) else None)
        candidates: list[tuple[str, ...] | None] = [None]
        if by_family is not None and len(by_family) > 1:
            candidates += [tuple(sorted(set(by_family) - {f})) for f in sorted(by_family)]
        best: tuple[float, Calibration] | None = None
        if len(y) >= 12:
            for families in candidates:
                p = (np.asarray(mparams, dtype=float) if by_family is None
                     else sum(by_family[f] for f in (families or by_family)))
                knees = np.unique(np.concatenate([np.quantile(p, np.linspace(0, 0.9, 19)), [p.max()]]))
                for knee in knees:
                    design = np.column_stack([s, n, np.maximum(p - knee, 0.0), np.ones_like(s)])
                    if np.linalg.matrix_rank(design) < 4:
                        design[:, 2] = 0.0
                        if np.linalg.matrix_rank(design) < 3:
                            continue
                    coef, *_ = np.linalg.lstsq(design / y[:, None], np.ones_like(y), rcond=None)
                    err = float(np.sum((design @ coef / y - 1.0) ** 2))
                    if best is None or err < best[0] * (1 - 1e-9):  # ties keep the simpler model (all families)
                        best = (err, cls(coef[0], coef[1], coef[3], coef[2], float(knee), families,
                                         fitted_on=len(y), **info))
        if best is not None:
            return best[1]
        scale = float(np.sum(s / y) / np.sum(s * s / y**2))
        return cls(scale, fitted_on=len(y), **info)


class LatencyTable:
    """Per-layer latencies (ms) keyed by `BlockKey`, plus metadata and an optional calibration."""

    def __init__(self, entries: Mapping[BlockKey, Mapping[str, Any]], metadata: Mapping[str, Any] | None = None,
                 path: str | Path | None = None) -> None:
        self._entries = {k: dict(v) for k, v in entries.items()}
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.path = Path(path) if path is not None else None
        self._latency = {k: float(v["latency_ms"]) for k, v in self._entries.items()}
        self._compiled: dict[int, tuple[Any, CompiledPredictor]] = {}
        self._covered: dict[tuple[int, tuple[int, ...]], Any] = {}

    # ------------------------------------------------------------------ I/O
    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        """Read a table CSV and its JSON sidecar; raise `TableError` naming the file on any mismatch."""
        path = Path(path)
        meta_path = sidecar_path(path)
        if not path.is_file():
            raise TableError(f"latency table {str(path)!r} does not exist")
        if not meta_path.is_file():
            raise TableError(f"latency table {str(path)!r} has no metadata file {str(meta_path)!r}")
        text = path.read_text()
        try:
            metadata = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise TableError(f"metadata {str(meta_path)!r} is not valid JSON ({err})") from None
        if not isinstance(metadata, dict):
            raise TableError(f"metadata {str(meta_path)!r} must be a JSON object")
        missing = [f for f in REQUIRED_METADATA if f not in metadata]
        if missing:
            raise TableError(f"metadata {str(meta_path)!r} lacks field(s) {missing}")
        if metadata["format_version"] != FORMAT_VERSION:
            raise TableError(f"metadata {str(meta_path)!r}: format_version {metadata['format_version']!r} "
                             f"is not {FORMAT_VERSION} (table written by another hwnas version)")
        reader = csv.DictReader(io.StringIO(text))
        if tuple(reader.fieldnames or ()) not in HEADERS:
            raise TableError(f"latency table {str(path)!r}: header {reader.fieldnames} is not {list(COLUMNS)} "
                             "(with a 'mid' column before latency_ms once it holds pruned layers)")
        entries: dict[BlockKey, dict[str, Any]] = {}
        for line, row in enumerate(reader, start=2):
            try:
                key = key_from_row(row)
                stats = {c: float(row[c]) for c in STAT_COLUMNS}
            except (ValueError, KeyError, TypeError, ArchError) as err:
                raise TableError(f"latency table {str(path)!r} line {line}: malformed row ({err})") from None
            if not (np.isfinite(stats["latency_ms"]) and stats["latency_ms"] > 0):
                raise TableError(f"latency table {str(path)!r} line {line}: latency_ms {row['latency_ms']!r} "
                                 "must be a positive number")
            if key in entries:
                raise TableError(f"latency table {str(path)!r} line {line}: duplicate key {key.short()}")
            for c in ("count", "passes", "remeasured", "flagged"):
                stats[c] = int(stats[c])
            entries[key] = stats
        if metadata["entries"] != len(entries):
            raise TableError(f"latency table {str(path)!r} has {len(entries)} rows but its metadata "
                             f"{str(meta_path)!r} says {metadata['entries']}: the files do not belong together")
        if metadata["csv_sha256"] != sha256_text(text):
            raise TableError(f"latency table {str(path)!r} does not match the checksum in {str(meta_path)!r} "
                             "(edited or truncated); rebuild it or re-import the measured CSV")
        return cls(entries, metadata, path)

    def save(self, path: str | Path) -> Path:
        """Write the CSV and its JSON sidecar (each atomically; metadata last)."""
        path = Path(path)
        self.metadata = write_table(path, ((k, self._entries[k]) for k in self._sorted_keys()), self.metadata)
        self.path = path
        return path

    def _sorted_keys(self) -> list[BlockKey]:
        order = {"stem": 0, "block": 1, "head": 2}
        return sorted(self._entries, key=lambda k: (-k.in_hw, order.get(k.kind, 3), k.short()))

    def add(self, entries: Mapping[BlockKey, Mapping[str, Any]], record: Mapping[str, Any]) -> None:
        """Add entries measured after the build (e.g. pruned widths, `nas.latency.time_keys`); `record`
        (date, count, drift factor...) is appended to ``metadata["extended"]``. Existing keys stay."""
        clash = [k.short() for k in entries if k in self._entries]
        if clash:
            raise TableError(f"latency table {self.where} already holds {clash[:3]}")
        for k, v in entries.items():
            self._entries[k] = dict(v)
            self._latency[k] = float(v["latency_ms"])
        self.metadata.setdefault("extended", []).append(dict(record))

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[BlockKey]:
        return self._sorted_keys()

    def entry(self, key: BlockKey) -> dict[str, Any]:
        """Every measured column of one key."""
        self.lookup_ms(key)
        return dict(self._entries[key])

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "<in-memory table>"

    def lookup_ms(self, key: BlockKey) -> float:
        """The latency (ms) of one layer; `MissingKeyError` names the key and the table file."""
        try:
            return self._latency[key]
        except KeyError:
            raise MissingKeyError(f"layer {key.short()} is not in latency table {self.where} "
                                  f"({len(self)} entries; built for space "
                                  f"{self.metadata.get('space', {}).get('name', '?')!r} at resolutions "
                                  f"{self.metadata.get('space', {}).get('resolutions', '?')}); "
                                  "build a table for this space and resolution") from None

    @property
    def dtype(self) -> str:
        """The dtype its layers were timed in: float32, or int8 (then ``metadata["quantization"]`` says how)."""
        return str(self.metadata.get("dtype", "float32"))

    @property
    def calibration(self) -> Calibration | None:
        data = self.metadata.get("calibration")
        return Calibration.from_dict(data) if data else None

    def set_calibration(self, calibration: Calibration | None) -> None:
        if calibration is None:
            self.metadata.pop("calibration", None)
        else:
            self.metadata["calibration"] = calibration.to_dict()

    # ------------------------------------------------------------------ prediction
    def summed_ms(self, arch: Arch, space: "SearchSpace") -> float:
        """Plain sum of the entries of every layer of `arch` (no calibration)."""
        return float(sum(self.lookup_ms(k) for k in space.block_keys(arch)))

    def predict(self, arch: Arch, space: "SearchSpace", calibrated: bool = True) -> float:
        """Predicted end-to-end latency (ms) of `arch`: the summed entries, calibrated if fitted."""
        keys = space.block_keys(arch)
        total = float(sum(self.lookup_ms(k) for k in keys))
        cal = self.calibration if calibrated else None
        return float(cal.apply(total, len(keys), cal.network_mparams(keys))) if cal else total

    def compile(self, space: "SearchSpace") -> CompiledPredictor:
        """The vectorized predictor of `space` over this table (cached; checked against `predict`)."""
        cached = self._compiled.get(id(space))
        if cached is not None and cached[0] is space:
            return cached[1]
        self.check_covers(space)
        compiled = CompiledPredictor(space, self.lookup_ms)
        check_slots_exact(compiled, space, self.lookup_ms, np.random.default_rng(0))
        self._compiled[id(space)] = (space, compiled)
        return compiled

    def predict_rows(self, rows: np.ndarray, space: "SearchSpace", calibrated: bool = True) -> np.ndarray:
        """Predicted latency (ms) of rows of option indices (`nas.Codec` of `space`): the fast path."""
        return self.compile(space).predict_rows(rows, self.calibration if calibrated else None)

    def predict_many(self, archs: Iterable[Arch | Mapping[str, Any]] | np.ndarray, space: "SearchSpace",
                     calibrated: bool = True) -> np.ndarray:
        """Predicted latency (ms) of many archs, `space.encode` dicts or codec rows at once."""
        rows = archs if isinstance(archs, np.ndarray) else self.compile(space).encode_indices(archs)
        return self.predict_rows(rows, space, calibrated)

    def expected(self, probs: Mapping[str, Any], space: "SearchSpace", calibrated: bool = True):  # noqa: ANN201
        """Expected latency (ms) under independent per-choice probabilities: a differentiable torch scalar.

        probs: ``{dim_name: 1-D tensor}`` for every name of ``space.dims`` that has more than one
        option (a name with a single option may be left out); each tensor holds the probabilities
        of that choice's options, in the order of ``space.dims[dim_name]``, e.g. for OFA
        ``{"s1.l0.kernel": softmax(alpha[0]) over (3, 5, 7), ..., "s1.depth": ... over (2, 3, 4)}``.
        A layer beyond the stage depth costs nothing; its own choices still need probabilities.
        The result is linear in each tensor, so gradients flow to every probability.
        """
        cal = self.calibration if calibrated else None
        total, layers, mparams = self.compile(space).expected(probs, cal.spill_families if cal else None)
        return cal.apply(total, layers, mparams) if cal else total

    def check_covers(self, space: "SearchSpace", resolutions: Iterable[int] | None = None) -> None:
        """Raise `TableError` naming the keys of `space` (at `resolutions`) that this table lacks.

        The one coverage check (`compile` runs it); a space found covered is not checked again."""
        resolutions = tuple(resolutions or space.resolutions)
        if self._covered.get((id(space), resolutions)) is space:
            return
        missing = [k for k in space.all_block_keys(resolutions) if k not in self._latency]
        if missing:
            shown = ", ".join(k.short() for k in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            differs = self.space_differences(space, resolutions)
            raise TableError(f"latency table {self.where} does not cover space {space.name!r} at resolutions "
                             f"{list(resolutions)}" + (f": it was built for {'; '.join(differs)}" if differs else "")
                             + f" ({len(missing)} missing layer(s): {shown}{more})")
        self._covered[(id(space), resolutions)] = space

    def space_differences(self, space: "SearchSpace", resolutions: Iterable[int]) -> list[str]:
        """The dimensions in which the space the table was built for (its metadata) differs from `space`,
        e.g. ``["in_channels 1, the space has 3"]`` (empty when the metadata names no space)."""
        built = self.metadata.get("space")
        if not isinstance(built, dict):
            return []
        here = {"name": space.name, "num_classes": space.num_classes, "in_channels": space.in_channels,
                "width_mult": space.width_mult}
        out = [f"{k} {built[k]}, the space has {v}" for k, v in here.items()
               if built.get(k) is not None and built[k] != v]
        lacking = sorted(set(resolutions) - set(built.get("resolutions") or resolutions))
        if lacking:
            out.append(f"resolutions {built['resolutions']}, the space needs {lacking}")
        return out

    def summary(self) -> dict[str, Any]:
        spreads = np.array([e["spread_pct"] for e in self._entries.values()]) if self._entries else np.zeros(1)
        return {"entries": len(self), "remeasured": sum(e["remeasured"] for e in self._entries.values()),
                "flagged": sum(e["flagged"] for e in self._entries.values()),
                "median_spread_pct": float(np.median(spreads)), "max_spread_pct": float(spreads.max())}


def today() -> str:
    return utc_now()
