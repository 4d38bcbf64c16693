"""The training loop's defaults: the one place they are written.

`training_loop()`'s keyword defaults, `train.py`'s help texts and the option processing of `training/options.py`
read them from here, so a changed default changes all three.
"""

SNAP_TICKS = 50  # --snap: ticks between image grids, network snapshots and metrics.
KIMG_PER_TICK = 4  # --tick: kimg between status lines (the tiny preset uses its own).
RANDOM_SEED = 0  # --seed.
P_INTERVAL = 4  # Iterations between p updates (ADA and APA).
P_KIMG = 500  # kimg for p to change by 1 (ADA and APA) ...
P_KIMG_TRANSFER = 100  # ... and when training starts from a network pickle (--resume=PKL).
NUM_WORKERS = 3  # --workers: DataLoader worker processes.
