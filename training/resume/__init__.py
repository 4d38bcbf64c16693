"""Resume: continuing a run exactly from a training-state file, or starting one from a network pickle.

One module per question:

* `state`: what a training-state file holds (`TrainingState`, its format version), reading and writing it
  atomically, finding the newest one in a run directory or under an `--outdir`, trimming `stats.jsonl` back to it.
* `rng`: capturing and restoring every random number generator of a process (part of the state).
* `snapshot`: the loop's live state (`LiveState`), packed into a state file at each snapshot (`save_snapshot`)
  and restored from one (`restore_live_state`).
* `options`: which train.py options may change on an exact resume (`RESUME_OVERRIDES`) and the check that the
  others repeat the run's own values, read back from `training_options.json`.
* `cli`: what `train.py --resume=latest|STATE.pt|RUN_DIR` does before anything runs (`is_exact_resume`,
  `exact_resume_options`).
* `transfer`: `--resume=PKL`, a new run from a network pickle's weights.

The package's `__init__` imports nothing, so `training.options` can use `transfer` without loading the rest.
"""
