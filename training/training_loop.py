"""The training loop: phases, accumulation, G EMA, ADA/APA adjustment, ticks, snapshots and exact resume.

Read `training_loop()` top to bottom: set-up (data, networks, augmentation, loss, phases), an optional exact
resume, then iterations, each followed by the maintenance `tick` when due. Behaviour follows the
StyleGAN2-ADA loop (phase order, lazy regularisation, EMA half-life with ramp-up, ticks and snapshots);
additions: exact resume from training-state files (what they hold, packing and restoring: `training.resume`),
gradient averaging without DDP (so AdaptiveMix's split D trains in sync across ranks), APA with its own p, and a
clean stop on SIGINT/SIGTERM.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil
import torch

import dnnlib
from dnnlib import atomic
from dnnlib.progress import ProgressBar
from torch_utils import misc, training_stats
from training import distributed, loop_defaults, run_control
from training.apa import build_augmentation
from training.image_grid import save_image_grid, select_grid_items
from training.loss import StyleGAN2Loss
from training.report import ProgressFigure
from training.resume import rng
from training.resume.snapshot import LiveState, restore_live_state, save_snapshot
from training.resume.state import load_training_state, resume_hint, truncate_stats_log
from training.resume.transfer import copy_from_network_pkl


@dataclass
class Phase:
    """One optimisation phase: `Gmain`, `Greg`, `Dmain`, `Dreg` (or `Gboth`/`Dboth`)."""

    name: str
    module: torch.nn.Module
    opt: torch.optim.Optimizer
    interval: int
    seconds: float = 0.0  # Duration of the latest execution (for Timing/<name>).


# ----------------------------------------------------------------------------
# Set-up.


def seed_everything(random_seed: int, num_gpus: int, rank: int, deterministic: bool) -> None:
    seed = random_seed * num_gpus + rank
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def make_data_loader(
    training_set,
    rank: int,
    num_gpus: int,
    batch_size: int,
    random_seed: int,
    data_loader_kwargs: dict,
    start_batch: int,
) -> Any:
    """Endless loader of per-rank batches, positioned after `start_batch` batches (for resume).

    The loader gets its own RNG generator so that its worker seeding never consumes the global stream.
    """
    sampler = misc.InfiniteSampler(training_set, rank=rank, num_replicas=num_gpus, seed=random_seed)
    batch_per_rank = batch_size // num_gpus
    sampler.load_state_dict(sampler.state_dict(num_yielded=start_batch * batch_per_rank))
    kwargs = dict(data_loader_kwargs)
    if kwargs.get("num_workers", 0) == 0:
        kwargs.pop("prefetch_factor", None)
    else:
        kwargs["worker_init_fn"] = dnnlib.util.ignore_stop_signals  # The main process handles a stop signal.
    loader = torch.utils.data.DataLoader(
        training_set,
        sampler=sampler,
        batch_size=batch_per_rank,
        generator=torch.Generator().manual_seed(random_seed),
        **kwargs,
    )
    return iter(loader)


def release_data_loader(data_iter: Any) -> None:
    """Stop the loader's worker processes now. Left to garbage collection at exit, their queues' semaphores are
    reported as leaked ("There appear to be N leaked semaphore objects"); `_shutdown_workers` is what the
    iterator's own finaliser calls."""
    shutdown = getattr(data_iter, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def build_networks(training_set, G_kwargs: dict, D_kwargs: dict, device: torch.device):
    common = dict(
        c_dim=training_set.label_dim, img_resolution=training_set.resolution, img_channels=training_set.num_channels
    )
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common).train().requires_grad_(False).to(device)
    D = dnnlib.util.construct_class_by_name(**D_kwargs, **common).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()
    return G, D, G_ema


def build_phases(
    G, D, G_opt_kwargs: dict, D_opt_kwargs: dict, G_reg_interval: int | None, D_reg_interval: int | None
) -> list[Phase]:
    """[Gmain, Greg, Dmain, Dreg] with lazy-regularisation-rescaled Adam (or Gboth/Dboth without it)."""
    phases = []
    for name, module, opt_kwargs, reg_interval in [
        ("G", G, G_opt_kwargs, G_reg_interval),
        ("D", D, D_opt_kwargs, D_reg_interval),
    ]:
        params = list(module.parameters())
        if reg_interval is None:
            opt = dnnlib.util.construct_class_by_name(params=params, **opt_kwargs)
            phases.append(Phase(name + "both", module, opt, 1))
            continue
        mb_ratio = reg_interval / (reg_interval + 1)
        opt_kwargs = dnnlib.EasyDict(opt_kwargs)
        opt_kwargs.lr = opt_kwargs.lr * mb_ratio
        opt_kwargs.betas = [beta**mb_ratio for beta in opt_kwargs.betas]
        opt = dnnlib.util.construct_class_by_name(params=params, **opt_kwargs)
        phases += [Phase(name + "main", module, opt, 1), Phase(name + "reg", module, opt, reg_interval)]
    return phases


# ----------------------------------------------------------------------------
# One iteration.


def fetch_phase_inputs(data_iter, training_set, phases, batch_size: int, batch_gpu: int, z_dim: int, device):
    """Real images/labels split into rounds, and per-phase latents/labels split the same way."""
    real_img, real_c = next(data_iter)
    real_img = (real_img.to(device).to(torch.float32) / 127.5 - 1).split(batch_gpu)
    real_c = real_c.to(device).split(batch_gpu)
    all_gen_z = torch.randn([len(phases) * batch_size, z_dim], device=device)
    all_gen_z = [z.split(batch_gpu) for z in all_gen_z.split(batch_size)]
    all_gen_c = [training_set.get_label(np.random.randint(len(training_set))) for _ in range(len(phases) * batch_size)]
    all_gen_c = torch.from_numpy(np.stack(all_gen_c)).to(device)
    all_gen_c = [c.split(batch_gpu) for c in all_gen_c.split(batch_size)]
    return real_img, real_c, all_gen_z, all_gen_c


def run_phase(phase: Phase, loss: StyleGAN2Loss, real_img, real_c, gen_z, gen_c) -> None:
    """Accumulate the phase's gradients over all rounds, average over ranks, sanitise, step."""
    start = time.perf_counter()
    params = [p for p in phase.module.parameters()]
    phase.opt.zero_grad(set_to_none=True)
    phase.module.requires_grad_(True)
    for round_idx, (img, c, z, gc) in enumerate(zip(real_img, real_c, gen_z, gen_c)):
        loss.accumulate_gradients(phase.name, img, c, z, gc, sync=(round_idx == len(real_img) - 1), gain=phase.interval)
    phase.module.requires_grad_(False)
    distributed.average_gradients(params)
    for param in params:
        if param.grad is not None:
            torch.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
    phase.opt.step()
    if real_img[0].is_cuda:
        torch.cuda.synchronize(real_img[0].device)
    phase.seconds = time.perf_counter() - start


@torch.no_grad()
def update_ema(G, G_ema, cur_nimg: int, batch_size: int, ema_kimg: float, ema_rampup: float | None) -> None:
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    ema_beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8))
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, ema_beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


# ----------------------------------------------------------------------------
# Snapshots, logs and the status line.


def export_fakes(G_ema, grid_z, grid_c, grid_size, path: str) -> None:
    images = torch.cat([G_ema(z=z, c=c, noise_mode="const").cpu() for z, c in zip(grid_z, grid_c)]).numpy()
    save_image_grid(images, path, drange=(-1, 1), grid=grid_size)


def status_line(stats: training_stats.Collector, total_kimg: float) -> str:
    """The per-tick status line, read from the tick's collected statistics (the values stats.jsonl records).

    Progress, timing, memory (CPU resident set; the tick's peak GPU allocation), p values, losses and the ETA
    (remaining kimg x this tick's sec/kimg). `apa` appears only when APA reported its p.
    """
    kimg = stats.mean("Progress/kimg")
    sec_per_kimg = stats.mean("Timing/sec_per_kimg")
    eta = (total_kimg - kimg) * sec_per_kimg
    fields = [
        f"tick {int(stats.mean('Progress/tick')):<5d}",
        f"kimg {kimg:<8.1f}",
        f"time {dnnlib.util.format_time(stats.mean('Timing/total_sec')):<12s}",
        f"sec/tick {stats.mean('Timing/sec_per_tick'):<7.1f}",
        f"sec/kimg {sec_per_kimg:<7.2f}",
        f"maintenance {stats.mean('Timing/maintenance_sec'):<6.1f}",
        f"cpumem {stats.mean('Resources/cpu_mem_gb'):<6.2f}",
        f"gpumem {stats.mean('Resources/peak_gpu_mem_gb'):<6.2f}",
        f"augment {stats.mean('Progress/augment'):.3f}",
    ]
    if stats.num("Progress/apa") > 0:
        fields.append(f"apa {stats.mean('Progress/apa'):.3f}")
    for label, name in [("lossG", "Loss/G/loss"), ("lossD", "Loss/D/loss"), ("amix", "Loss/adaptivemix")]:
        if stats.num(name) > 0:
            fields.append(f"{label} {stats.mean(name):<7.3f}")
    fields.append(f"eta {dnnlib.util.format_time(max(eta, 0))}")
    return " ".join(fields)


def open_tensorboard(run_dir: str):
    try:
        import torch.utils.tensorboard as tensorboard

        return tensorboard.SummaryWriter(run_dir)
    except ImportError as err:
        print(f"Skipping tfevents export: {err}")
        return None


# ----------------------------------------------------------------------------
# The loop.


def training_loop(
    run_dir: str = ".",
    training_set_kwargs: dict = {},
    data_loader_kwargs: dict = {},
    G_kwargs: dict = {},
    D_kwargs: dict = {},
    G_opt_kwargs: dict = {},
    D_opt_kwargs: dict = {},
    augment_kwargs: dict | None = None,
    loss_kwargs: dict = {},
    apa_kwargs: dict | None = None,  # PseudoAugment args (target, interval, kimg) + with_dataaug; None = off.
    metrics: list[str] = [],
    metric_kwargs: dict = {},  # Extra MetricOptions for every metric: detector, detector_dir, num_images.
    random_seed: int = loop_defaults.RANDOM_SEED,
    num_gpus: int = 1,
    rank: int = 0,
    device: str | torch.device = "cuda",
    batch_size: int = 4,
    batch_gpu: int = 4,
    ema_kimg: float = 10,
    ema_rampup: float | None = None,
    G_reg_interval: int | None = 4,
    D_reg_interval: int | None = 16,
    augment_p: float = 0,
    ada_target: float | None = None,
    ada_interval: int = loop_defaults.P_INTERVAL,
    ada_kimg: float = loop_defaults.P_KIMG,
    total_kimg: float = 25000,
    kimg_per_tick: float = loop_defaults.KIMG_PER_TICK,
    image_snapshot_ticks: int | None = loop_defaults.SNAP_TICKS,
    network_snapshot_ticks: int | None = loop_defaults.SNAP_TICKS,
    resume_pkl: str | None = None,
    resume_state: str | None = None,
    cudnn_benchmark: bool = True,
    allow_tf32: bool = False,
    deterministic: bool = False,
    abort_fn: Callable[[], bool] | None = None,  # Checked after every iteration (any rank): True ends the run cleanly.
    progress_fn: Callable[[int, float], None] | None = None,
) -> None:
    """Train G and D; see the module docstring. `resume_state` continues a run exactly from a training-state file."""
    start_time = time.time()
    device = torch.device(device)
    seed_everything(random_seed, num_gpus, rank, deterministic)
    torch.backends.cudnn.benchmark = cudnn_benchmark and not deterministic
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    state = load_training_state(resume_state) if resume_state is not None else None
    if state is not None and rank == 0:
        atomic.remove_temp_files(run_dir)  # Before anything writes: a killed or disk-full run's temp files.
    log = print if rank == 0 else (lambda *args, **kwargs: None)

    log("Loading training set...")
    training_set = dnnlib.util.construct_class_by_name(**training_set_kwargs)
    start_batch = state["batch_idx"] if state is not None else 0
    data_iter = make_data_loader(training_set, rank, num_gpus, batch_size, random_seed, data_loader_kwargs, start_batch)
    log(
        f"\nNum images:  {len(training_set)}\nImage shape: {training_set.image_shape}\nLabel shape: {training_set.label_shape}\n"
    )

    log("Constructing networks...")
    G, D, G_ema = build_networks(training_set, G_kwargs, D_kwargs, device)
    if resume_pkl is not None and state is None and rank == 0:
        copy_from_network_pkl(resume_pkl, dict(G=G, D=D, G_ema=G_ema))
    if rank == 0:
        z = torch.zeros([batch_gpu, G.z_dim], device=device)
        c = torch.zeros([batch_gpu, G.c_dim], device=device)
        img = misc.print_module_summary(G_ema, [z, c])
        misc.print_module_summary(D, [img, c])

    log("Setting up augmentation...")
    augment_pipe, ada, apa = build_augmentation(
        augment_kwargs, augment_p, ada_target, ada_interval, ada_kimg, apa_kwargs, device
    )

    if num_gpus > 1:
        log(f"Distributing across {num_gpus} GPUs...")
    for module in (G, D, G_ema):
        distributed.broadcast_module(module)

    log("Setting up training phases...")
    loss = dnnlib.util.construct_class_by_name(
        device=device,
        G=G,
        D=D,
        augment_pipe=augment_pipe,
        apa=apa,
        real_logit_observers=(ada,) if ada else (),
        **loss_kwargs,
    )
    phases = build_phases(G, D, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval)

    optimizers = {phase.name: phase.opt for phase in phases}
    live = LiveState(G, D, G_ema, optimizers, loss, augment_pipe=augment_pipe, ada=ada, apa=apa)
    aborted = False
    if state is not None:
        log(f'Resuming exactly from "{resume_state}"')
        restore_live_state(live, state, rank)
        if live.cur_nimg >= total_kimg * 1000:
            log(
                f"The run already reached {live.cur_nimg / 1000:g} kimg of {total_kimg:g}; pass a larger --kimg to extend it."
            )
            release_data_loader(data_iter)
            return

    grid_size = grid_z = grid_c = None
    if rank == 0:
        log("Exporting sample images...")
        grid_size, images, labels = select_grid_items(training_set)
        grid_gen = torch.Generator().manual_seed(random_seed)  # Own generator: the same grid after any resume.
        grid_z = torch.randn([labels.shape[0], G.z_dim], generator=grid_gen).to(device).split(batch_gpu)
        grid_c = torch.from_numpy(labels).to(device).split(batch_gpu)
        if state is None:
            reals_png, fakes_png = os.path.join(run_dir, "reals.png"), os.path.join(run_dir, "fakes_init.png")
            write_or_stop(run_dir, save_image_grid, images, reals_png, drange=(0, 255), grid=grid_size)
            write_or_stop(run_dir, export_fakes, G_ema, grid_z, grid_c, grid_size, fakes_png)

    log("Initializing logs...")
    stats_collector = training_stats.Collector(regex=".*")
    stats_metrics: dict[str, float] = {}
    stats_jsonl = tensorboard = progress_figure = None
    if rank == 0:
        stats_path = os.path.join(run_dir, "stats.jsonl")
        if state is not None:
            truncate_stats_log(stats_path, live.cur_tick)
        stats_jsonl = open(stats_path, "at" if state is not None else "wt", encoding="utf-8")
        tensorboard = open_tensorboard(run_dir)
        progress_figure = ProgressFigure(run_dir)  # progress.png after each snapshot (or says figures are off).
    if state is not None:
        rng.restore_rng_state(state["rng"][rank])  # Last: set-up above may draw from the global streams.

    log(f"Training for {total_kimg} kimg...\n")
    tick_start_nimg = live.cur_nimg
    tick_start_time = time.time()
    maintenance_time = tick_start_time - start_time
    if progress_fn is not None:
        progress_fn(live.cur_nimg // 1000, total_kimg)
    progress = ProgressBar(int(kimg_per_tick * 1000), desc=f"tick {live.cur_tick}", unit="img") if rank == 0 else None

    while True:
        real_img, real_c, all_gen_z, all_gen_c = fetch_phase_inputs(
            data_iter, training_set, phases, batch_size, batch_gpu, G.z_dim, device
        )
        for phase, gen_z, gen_c in zip(phases, all_gen_z, all_gen_c):
            if live.batch_idx % phase.interval == 0:
                run_phase(phase, loss, real_img, real_c, gen_z, gen_c)
        update_ema(G, G_ema, live.cur_nimg, batch_size, ema_kimg, ema_rampup)
        live.cur_nimg += batch_size
        live.batch_idx += 1
        for controller in (ada, apa):
            if controller is not None:
                controller.step(live.batch_idx, batch_size)
        if progress is not None:
            progress.update(batch_size)

        done = live.cur_nimg >= total_kimg * 1000
        if not done and abort_fn is not None and any(distributed.all_gather_objects(bool(abort_fn()))):
            done = aborted = True  # A stop request ends this tick now: status line, final snapshot, stats line.
        if not done and live.cur_tick != 0 and live.cur_nimg < tick_start_nimg + kimg_per_tick * 1000:
            continue
        if progress is not None:
            progress.close()

        # Tick: report, snapshot, metrics, logs.
        tick_end_time = time.time()
        total_sec = tick_end_time - start_time
        tick_sec = tick_end_time - tick_start_time
        augment_value = float(augment_pipe.p) if augment_pipe is not None else 0.0
        training_stats.report0("Progress/tick", live.cur_tick)
        training_stats.report0("Progress/kimg", live.cur_nimg / 1e3)
        training_stats.report0("Timing/total_sec", total_sec)
        training_stats.report0("Timing/sec_per_tick", tick_sec)
        training_stats.report0("Timing/sec_per_kimg", tick_sec / (live.cur_nimg - tick_start_nimg) * 1e3)
        training_stats.report0("Timing/maintenance_sec", maintenance_time)
        training_stats.report0("Resources/cpu_mem_gb", psutil.Process(os.getpid()).memory_info().rss / 2**30)
        training_stats.report0(
            "Resources/peak_gpu_mem_gb", torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        training_stats.report0("Progress/augment", augment_value)
        if apa is not None:
            training_stats.report0("Progress/apa", float(apa.p))
        training_stats.report0("Timing/total_hours", total_sec / 3600)
        training_stats.report0("Timing/total_days", total_sec / 86400)
        for phase in phases:
            training_stats.report0(f"Timing/{phase.name}", phase.seconds * 1e3)
        stats_collector.update()
        log(status_line(stats_collector, total_kimg))

        if rank == 0 and image_snapshot_ticks is not None and (done or live.cur_tick % image_snapshot_ticks == 0):
            fakes_png = os.path.join(run_dir, f"fakes{live.cur_nimg // 1000:06d}.png")
            write_or_stop(run_dir, export_fakes, G_ema, grid_z, grid_c, grid_size, fakes_png)

        if network_snapshot_ticks is not None and (done or live.cur_tick % network_snapshot_ticks == 0):
            snapshot_pkl = write_or_stop(run_dir, save_snapshot, live, run_dir, rank, training_set_kwargs)
            if metrics and not aborted:
                stats_metrics.update(
                    evaluate_metrics(
                        metrics,
                        metric_kwargs,
                        G_ema,
                        training_set_kwargs,
                        num_gpus,
                        rank,
                        device,
                        run_dir,
                        snapshot_pkl,
                    )
                )

        if rank == 0:
            stats_dict = dict(stats_collector.as_dict(), timestamp=time.time())
            stats_jsonl.write(json.dumps(stats_dict) + "\n")
            stats_jsonl.flush()
            if tensorboard is not None:
                global_step = int(live.cur_nimg / 1e3)
                walltime = stats_dict["timestamp"] - start_time
                for name, value in stats_dict.items():
                    if name != "timestamp":
                        tensorboard.add_scalar(name, value["mean"], global_step=global_step, walltime=walltime)
                for name, value in stats_metrics.items():
                    tensorboard.add_scalar(f"Metrics/{name}", value, global_step=global_step, walltime=walltime)
                tensorboard.flush()
            if done or any(
                t is not None and live.cur_tick % t == 0 for t in (image_snapshot_ticks, network_snapshot_ticks)
            ):
                progress_figure.update(final=done)  # After the tick's stats line; never raises.
        if progress_fn is not None:
            progress_fn(live.cur_nimg // 1000, total_kimg)

        live.cur_tick += 1
        tick_start_nimg = live.cur_nimg
        tick_start_time = time.time()
        maintenance_time = tick_start_time - tick_end_time
        if done:
            break
        if rank == 0:
            progress = ProgressBar(int(kimg_per_tick * 1000), desc=f"tick {live.cur_tick}", unit="img")

    if stats_jsonl is not None:
        stats_jsonl.close()
    if tensorboard is not None:
        tensorboard.close()
    release_data_loader(data_iter)
    log("\nExiting...")
    if aborted:  # The last line of log.txt: why the run ended and what a resume continues from.
        log(f"Stopped at {live.cur_nimg / 1000:g} kimg on request; {resume_hint(run_dir)}.")


def write_or_stop(run_dir: str, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`write(*args, **kwargs)`, with a failed write (full disk, read-only folder) raised as a one-line RunError
    naming what a resume continues from (the atomic writer has already removed its temp file)."""
    try:
        return write(*args, **kwargs)
    except atomic.WriteError as err:
        raise run_control.RunError(f"{err}; {resume_hint(run_dir)}") from None


def evaluate_metrics(
    metrics, metric_kwargs, G_ema, training_set_kwargs, num_gpus, rank, device, run_dir, snapshot_pkl
) -> dict[str, float]:
    """Compute each metric on the snapshot's G_ema (all ranks), append its jsonl line (rank 0)."""
    from metrics import metric_main

    if rank == 0:
        print("Evaluating metrics...")
    rng_state = rng.capture_rng_state()  # Metrics must not shift the training RNG streams (exact resume).
    results = {}
    for metric in metrics:
        result = metric_main.calc_metric(
            metric=metric,
            G=G_ema,
            dataset_kwargs=training_set_kwargs,
            num_gpus=num_gpus,
            rank=rank,
            device=device,
            **metric_kwargs,
        )
        if rank == 0:
            metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=snapshot_pkl)
        results.update(result.results)
    rng.restore_rng_state(rng_state)
    return results
