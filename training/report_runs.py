"""Read run folders into one shape for the reports: `train.py` runs (stats.jsonl, metric-*.jsonl,
training_options.json, fakes grids) and the labs' `results.jsonl` folders (labs.dcgan, labs.ssl, labs.toy).

Every evaluation and every tick is placed at its own progress (kimg, epoch or step) and at the training time
reached there. For a `train.py` run the training time is the sum of the ticks' durations (`Timing/sec_per_tick`),
which leaves out start-up, snapshots and metric evaluations and so carries over a resume unchanged (the
resumed process restarts `Timing/total_sec` from zero). A resumed run's stats.jsonl may repeat ticks (written
by a killed process after its last state): a tick that is not larger than the one before starts over from
there, dropping the earlier lines from that tick on. A metric line sits at the tick of its snapshot
(`network-snapshot-<kimg>.pkl`), so metrics computed later with calc_metrics.py land where they belong.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import numpy as np

from dnnlib.util import load_error_reason, load_weights_only
from training.saved_names import current_names, move_adaptivemix_kwargs, with_added_fields

TRAIN_FILES = ("stats.jsonl", "training_options.json")
LAB_RESULTS = "results.jsonl"
# Options that do not change what a run trains (bookkeeping, evaluation, length): not part of a group.
IGNORED_OPTIONS = {
    "train": (
        "run_dir",
        "total_kimg",
        "image_snapshot_ticks",
        "network_snapshot_ticks",
        "metrics",
        "metric_kwargs",
        "data_loader_kwargs",
    ),
    "dcgan": ("kimg", "eval_every"),
    "ssl": ("epochs",),
    "toy": ("run",),
}
SEED_OPTION = {"train": "random_seed", "dcgan": "seed", "ssl": "seed", "toy": "seed"}
TOY_METRICS = ("modes", "hq_pct", "mmd", "num_modes")
_SNAPSHOT_KIMG = re.compile(r"network-snapshot-(\d+)\.pkl$")
_FAKES = re.compile(r"^fakes(\d+)\.png$")


@dataclasses.dataclass(eq=False)
class Curve:
    """One quantity over a run: `x` progress (the run's unit), `hours` training time [h], `y` the values (all [N])."""

    x: np.ndarray
    hours: np.ndarray
    y: np.ndarray


@dataclasses.dataclass(eq=False)
class Run:
    """One run as the reports see it."""

    path: str  # Its folder ('folder#name' for one run of a toy results file).
    name: str
    kind: str  # 'train', 'dcgan', 'ssl' or 'toy'.
    unit: str  # Progress unit: 'kimg', 'epoch' or 'step'.
    options: dict[str, Any]  # Flattened ('a.b' keys) options that define the run, without seed and bookkeeping.
    seed: int | None
    metrics: dict[str, Curve]  # Evaluations: fid50k_full, kid50k_full, test_error, mmd, ...
    stats: dict[str, Curve]  # Per-tick training statistics (losses, p, timing); empty where none are logged.
    grid: str | None  # The latest fakes grid PNG, if any.
    status: str  # 'finished', 'running', 'stopped' or 'unknown'.
    notes: list[str] = dataclasses.field(default_factory=list)  # What could not be read, one line each.


def flatten(options: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}, 'c': [1, 2]} -> {'a.b': 1, 'c': '[1, 2]'} (lists as JSON text so that values hash)."""
    flat: dict[str, Any] = {}
    for key, value in options.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return flat


def split_options(kind: str, options: dict) -> tuple[dict[str, Any], int | None]:
    """(options that define the group, seed) from a run's raw options; names and layouts saved before the one
    vocabulary read as today's, and options added since read with the value those runs used
    (`training.saved_names`), so old and new runs of one configuration group together."""
    options = with_added_fields(kind, current_names(options))
    if kind == "train":
        try:
            move_adaptivemix_kwargs(options)
        except ValueError:
            pass  # A hand-made alpha other than 1: its options stay under the old keys.
    flat = flatten(options)
    seed = flat.pop(SEED_OPTION[kind], None)
    ignored = IGNORED_OPTIONS[kind]
    kept = {k: v for k, v in flat.items() if k.split(".")[0] not in ignored}
    return kept, (int(seed) if seed is not None else None)


def read_jsonl(path: str, notes: list[str]) -> list[dict]:
    """Complete JSON lines of `path`; a last line cut short (a run writing it now) is left out silently, a bad
    line elsewhere is left out with a note."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                notes.append(f"{path}: line {i + 1} is not JSON (left out)")
    return records


def latest_grid(folder: str) -> str | None:
    """The fakes grid with the largest number (`fakesNNNNNN.png`), else `fakes_init.png`, else None."""
    numbered = [(int(m.group(1)), name) for name in os.listdir(folder) if (m := _FAKES.match(name))]
    if numbered:
        return os.path.join(folder, max(numbered)[1])
    init = os.path.join(folder, "fakes_init.png")
    return init if os.path.isfile(init) else None


def _pid_alive(lock_path: str) -> bool:
    try:
        pid = int(open(lock_path, encoding="ascii").read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False  # No lock file, no pid in it, or no such process.
    return True


# ----------------------------------------------------------------------------
# train.py runs.


def read_ticks(path: str, notes: list[str]) -> list[dict]:
    """stats.jsonl's lines in tick order, a restart at tick t replacing the lines from tick t on."""
    kept: list[dict] = []
    for record in read_jsonl(path, notes):
        try:
            tick = int(round(record["Progress/tick"]["mean"]))
        except (KeyError, TypeError):
            notes.append(f"{path}: a line without Progress/tick (left out)")
            continue
        while kept and int(round(kept[-1]["Progress/tick"]["mean"])) >= tick:
            kept.pop()
        kept.append(record)
    return kept


def stats_curves(ticks: list[dict]) -> dict[str, Curve]:
    """One curve per statistic (its per-tick mean) over kimg and cumulative training hours."""
    if not ticks:
        return {}
    kimg = np.array([t["Progress/kimg"]["mean"] for t in ticks], dtype=np.float64)
    tick_sec = np.array([t.get("Timing/sec_per_tick", {}).get("mean", np.nan) for t in ticks], dtype=np.float64)
    hours = np.cumsum(np.nan_to_num(tick_sec)) / 3600
    names = dict.fromkeys(k for t in ticks for k, v in t.items() if isinstance(v, dict) and "mean" in v)
    curves = {}
    for name in names:
        idx = [i for i, t in enumerate(ticks) if name in t and t[name].get("num", 1) > 0]
        y = np.array([ticks[i][name]["mean"] for i in idx], dtype=np.float64)
        curves[name] = Curve(kimg[idx], hours[idx], y)
    return curves


def metric_curves(folder: str, stats: dict[str, Curve], notes: list[str]) -> dict[str, Curve]:
    """One curve per result key of every metric-*.jsonl, each point at its snapshot's tick (the first tick at
    or past the snapshot's whole kimg). A snapshot evaluated twice keeps its last line."""
    ticks = stats.get("Progress/kimg")
    points: dict[str, dict[float, tuple[float, float]]] = {}
    for name in sorted(os.listdir(folder)):
        if not (name.startswith("metric-") and name.endswith(".jsonl")):
            continue
        for record in read_jsonl(os.path.join(folder, name), notes):
            match = _SNAPSHOT_KIMG.search(str(record.get("snapshot_pkl") or ""))
            if match is None or not isinstance(record.get("results"), dict):
                notes.append(f"{name}: a line without a network-snapshot-<kimg>.pkl or results (left out)")
                continue
            kimg, hours = float(match.group(1)), float("nan")
            if ticks is not None:
                at = np.nonzero((ticks.x >= kimg - 1e-6) & (ticks.x < kimg + 1))[0]
                if len(at):
                    kimg, hours = float(ticks.x[at[0]]), float(ticks.hours[at[0]])
            for key, value in record["results"].items():
                points.setdefault(key, {})[kimg] = (hours, float(value))
    curves = {}
    for key, by_kimg in points.items():
        xs = sorted(by_kimg)
        curves[key] = Curve(np.array(xs), np.array([by_kimg[x][0] for x in xs]), np.array([by_kimg[x][1] for x in xs]))
    return curves


def read_train_run(folder: str) -> Run:
    """A `train.py` run folder (also one written before the reports existed, or one still training)."""
    notes: list[str] = []
    options_path = os.path.join(folder, "training_options.json")
    raw: dict = {}
    if os.path.isfile(options_path):
        with open(options_path, encoding="utf-8") as f:
            raw = json.load(f)
    else:
        notes.append(f"{folder}: no training_options.json (options unknown)")
    options, seed = split_options("train", raw)
    stats_path = os.path.join(folder, "stats.jsonl")
    ticks = read_ticks(stats_path, notes) if os.path.isfile(stats_path) else []
    stats = stats_curves(ticks)
    metrics = metric_curves(folder, stats, notes)
    last_kimg = float(ticks[-1]["Progress/kimg"]["mean"]) if ticks else 0.0
    total = raw.get("total_kimg")
    if total is not None and last_kimg >= float(total) - 1e-3:
        status = "finished"
    elif _pid_alive(os.path.join(folder, ".run.lock")):
        status = "running"
    else:
        status = "stopped" if ticks and total is not None else "unknown"
    name = os.path.basename(os.path.normpath(folder))
    parent = os.path.basename(os.path.dirname(os.path.normpath(folder)))
    if re.match(r"^\d{5}-", name) and parent:  # train.py's numbered folder: name it by its outdir too.
        name = f"{parent}/{name}"
    return Run(folder, name, "train", "kimg", options, seed, metrics, stats, latest_grid(folder), status, notes)


# ----------------------------------------------------------------------------
# Lab folders.


def _lab_config(folder: str, notes: list[str]) -> dict:
    """The config stored in a lab's snapshot.pt, or {} with a note.

    A lab snapshot is a dict whose "config" entry is the run's options as a plain dict; it is read with
    `weights_only=True` (tensors and plain values only), so no code from the file runs and no lab code is needed.
    """
    path = os.path.join(folder, "snapshot.pt")
    if not os.path.isfile(path):
        notes.append(f"{folder}: no snapshot.pt (options unknown)")
        return {}
    try:
        state = load_weights_only(path)
    except Exception as err:  # A damaged snapshot: the results can still be compared, without options.
        notes.append(f"{path}: could not read its config ({load_error_reason(err)})")
        return {}
    config = state.get("config") if isinstance(state, dict) else None
    if not isinstance(config, dict):
        notes.append(f"{path}: could not read its config (it holds no run configuration)")
        return {}
    return dict(config)


def _curves_from_lines(lines: list[dict], x_key: str, skip: tuple[str, ...]) -> dict[str, Curve]:
    curves = {}
    keys = dict.fromkeys(k for line in lines for k in line if k not in skip)
    for key in keys:
        rows = [line for line in lines if isinstance(line.get(key), (int, float)) and x_key in line]
        if rows:
            x = np.array([r[x_key] for r in rows], dtype=np.float64)
            hours = np.array([r.get("seconds", np.nan) for r in rows], dtype=np.float64) / 3600
            curves[key] = Curve(x, hours, np.array([r[key] for r in rows], dtype=np.float64))
    return curves


def read_lab_folder(folder: str) -> list[Run]:
    """The runs of a lab folder's results.jsonl: one for labs.dcgan or labs.ssl, one per line for labs.toy."""
    notes: list[str] = []
    lines = read_jsonl(os.path.join(folder, LAB_RESULTS), notes)
    if not lines:
        raise ValueError(f"{folder}/{LAB_RESULTS} holds no results yet")
    name = os.path.basename(os.path.normpath(folder))
    first = lines[0]
    if "dataset" in first and "variant" in first:  # labs.toy: one finished run per line.
        runs = []
        for line in lines:
            metrics = {
                k: Curve(
                    np.array([line["steps"]], float),
                    np.array([line.get("seconds", np.nan) / 3600]),
                    np.array([float(line[k])]),
                )
                for k in TOY_METRICS[:3]
                if k in line
            }
            raw = {k: v for k, v in line.items() if k not in (*TOY_METRICS, "seconds")}
            options, seed = split_options("toy", raw)
            runs.append(
                Run(
                    f"{folder}#{line.get('run')}",
                    str(line.get("run")),
                    "toy",
                    "step",
                    options,
                    seed,
                    metrics,
                    {},
                    None,
                    "finished",
                    list(notes),
                )
            )
        return runs
    if "epoch" in first and "test_error" in first:
        kind, unit, metric_keys = "ssl", "epoch", ("test_error",)
    elif "kimg" in first:
        kind, unit, metric_keys = "dcgan", "kimg", None
    else:
        raise ValueError(f"{folder}/{LAB_RESULTS}: not a labs.dcgan, labs.ssl or labs.toy results file")
    config = _lab_config(folder, notes)
    options, seed = split_options(kind, config)
    curves = _curves_from_lines(lines, unit, (unit, "seconds"))
    if kind == "dcgan":
        metrics = {k: c for k, c in curves.items() if k in ("fid", "kid")}
    else:
        metrics = {k: c for k, c in curves.items() if k in metric_keys}
    stats = {k: c for k, c in curves.items() if k not in metrics}
    total = config.get("kimg" if kind == "dcgan" else "epochs")
    last = float(lines[-1].get(unit, 0))
    status = "unknown" if total is None else ("finished" if last >= float(total) - 1e-6 else "stopped")
    return [Run(folder, name, kind, unit, options, seed, metrics, stats, latest_grid(folder), status, notes)]


# ----------------------------------------------------------------------------
# Finding runs.


def is_train_run(folder: str) -> bool:
    return any(os.path.isfile(os.path.join(folder, n)) for n in TRAIN_FILES)


def is_lab_folder(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, LAB_RESULTS))


def find_run_folders(path: str, depth: int = 2) -> list[str]:
    """`path` if it is a run or lab folder, else the run folders below it (up to `depth` levels), sorted."""
    if is_train_run(path) or is_lab_folder(path):
        return [path]
    if depth == 0 or not os.path.isdir(path):
        return []
    found = []
    for name in sorted(os.listdir(path)):
        sub = os.path.join(path, name)
        if os.path.isdir(sub) and not name.startswith("."):
            found += find_run_folders(sub, depth - 1)
    return found


def read_runs(paths: list[str]) -> list[Run]:
    """Every run under `paths` (run folders, lab folders, or folders holding them). A ValueError names a path
    that holds no run."""
    runs: list[Run] = []
    for path in paths:
        folders = find_run_folders(path)
        if not folders:
            raise ValueError(
                f"{path}: no run here (expected a train.py run folder with stats.jsonl, a lab folder with "
                f"{LAB_RESULTS}, or a folder holding them)"
            )
        for folder in folders:
            runs += [read_train_run(folder)] if is_train_run(folder) else read_lab_folder(folder)
    return runs
