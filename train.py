"""Train a StyleGAN2-ADA-style GAN, optionally with AdaptiveMix, ADA and APA.

Examples:
    python train.py --outdir=runs --data=afhqcat5k.zip --gpus=8 --aug=ada --adaptivemix=1
    python train.py --outdir=runs --data=fmnist32.zip --cfg=tiny --kimg=20 --adaptivemix=1 --device=cpu
    python train.py --outdir=runs --resume=latest          # continue the newest run exactly
"""

from __future__ import annotations

import json
import os
import traceback

import click
import torch
from torch.multiprocessing.spawn import ProcessException

import adaptivemix
import dnnlib
from dnnlib import atomic, trust
from dnnlib.cli import click_errors
from metrics import detector_check, detectors
from training import distributed, loop_defaults, run_checks, run_control
from training import options as opts
from training.options import (
    AUGPIPE_CHOICES,
    CFG_CHOICES,
    FINITE_FLOAT,
    build_training_options,
    next_run_dir,
    parse_comma_list,
)
from training.resume import cli as resume_cli
from training.resume import transfer
from training.resume.state import resume_hint
from training.saved_names import adaptivemix_options
from training.techniques.train_options import describe_techniques


class CommaList(click.ParamType):
    name = "list"

    def convert(self, value, param, ctx):
        return value if isinstance(value, list) else parse_comma_list(value)


def subprocess_fn(rank: int, args: dnnlib.EasyDict) -> None:
    """Entry point of every training process (inside the process group `distributed.launch` set up): log, loop.

    The first SIGINT/SIGTERM ends the run cleanly at the next iteration. log.txt ends with the reason a run
    stopped: the loop's last line, a one-line error, or the traceback (written before the log closes).
    """
    from torch_utils import training_stats
    from training import training_loop

    log = dnnlib.util.Logger(file_name=os.path.join(args.run_dir, "log.txt"), file_mode="a", should_flush=True)
    try:
        with run_control.StopSignals() as stop:
            device = distributed.process_device(args.device, rank)
            training_stats.init_multiprocessing(rank=rank, sync_device=device if args.num_gpus > 1 else None)
            training_loop.training_loop(rank=rank, abort_fn=stop.requested, **dict(args, device=device))
    except run_control.RunError as err:
        log.write_file_only(f"\nError: {err}\n")
        traceback.clear_frames(err.__traceback__)  # The loop's locals go now: its DataLoader workers stop cleanly.
        raise
    except KeyboardInterrupt as err:
        log.write_file_only(f"\nStopped at once ({err or 'KeyboardInterrupt'}); {resume_hint(args.run_dir)}.\n")
        traceback.clear_frames(err.__traceback__)
        raise
    except BaseException as err:
        log.write_file_only(traceback.format_exc())
        traceback.clear_frames(err.__traceback__)
        raise
    finally:
        log.close()


def start_run_dir(args: dnnlib.EasyDict, outdir: str, desc: str | None) -> run_control.RunLock:
    """Create a new run directory (renumbered if a simultaneous run took the name) or lock an existing one.

    Returns the held lock; a directory in use by another train.py is one error line naming its pid.
    """
    if "resume_state" not in args:
        print("Creating output directory...")
        for _attempt in range(100):
            try:
                os.makedirs(args.run_dir)
                break
            except FileExistsError:
                if desc is None or distributed.torchrun_rank() is not None:
                    raise
                args.run_dir = next_run_dir(outdir, desc)
            except OSError as err:
                raise click.ClickException(atomic.describe_write_error(args.run_dir, err)) from None
    lock = run_control.RunLock(args.run_dir)
    try:
        lock.acquire()
    except run_control.RunDirBusyError as err:
        raise click.ClickException(str(err)) from None
    except OSError as err:  # A read-only or full run directory.
        raise click.ClickException(atomic.describe_write_error(lock.path, err)) from None
    if "resume_state" not in args:
        saved = {k: v for k, v in args.items() if k != "device"}
        try:
            atomic.write_text(os.path.join(args.run_dir, "training_options.json"), json.dumps(saved, indent=2))
        except atomic.WriteError as err:
            lock.release()
            raise click.ClickException(str(err)) from None
    return lock


def run_launch(args: dnnlib.EasyDict, device: str) -> None:
    """`distributed.launch` of the training processes, with their failures reported as one line."""
    try:
        if args.num_gpus > 1 and distributed.torchrun_rank() is None:
            with run_control.StopSignals():  # Ctrl-C reaches every process; the children stop cleanly.
                distributed.launch(subprocess_fn, args, args.num_gpus, device)
        else:
            distributed.launch(subprocess_fn, args, args.num_gpus, device)
    except run_control.RunError as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt as err:
        raise click.ClickException(
            f"stopped at once ({err or 'KeyboardInterrupt'}); {resume_hint(args.run_dir)}"
        ) from None
    except ProcessException as err:
        last = [line for line in str(err).splitlines() if line.strip()][-1:] or ["unknown error"]
        raise click.ClickException(f"a training process failed: {last[0]} (see {args.run_dir}/log.txt)") from None


@click.command(context_settings=dict(help_option_names=["-h", "--help"]))
@click.pass_context
# General options.
@click.option("--outdir", help="Where to save the results", required=True, metavar="DIR")
@click.option("--gpus", help="Number of GPUs (processes) to use [default: 1]", type=int, metavar="INT")
@click.option("--snap", help=f"Snapshot interval [default: {loop_defaults.SNAP_TICKS} ticks]", type=int, metavar="INT")
@click.option(
    "--metrics", help='Comma-separated list or "none" [default: fid50k_full on GPU, none on CPU]', type=CommaList()
)
@click.option(
    "--metric-detector",
    help="Detector file/URL for every metric (e.g. a domain detector: works offline)",
    metavar="PATH",
)
@click.option("--detector-dir", help="Folder of local detector copies [default: $GAN_DETECTOR_DIR]", metavar="DIR")
@click.option(
    "--metric-images",
    help="Cap real/generated images per metric (quick checks, not comparable with 50k)",
    type=int,
    metavar="INT",
)
@click.option(
    "--metric-data",
    help="Dataset zip/folder the metrics' real statistics come from (a test set, the full set) [default: --data]",
    metavar="PATH",
)
@click.option("--seed", help=f"Random seed [default: {loop_defaults.RANDOM_SEED}]", type=int, metavar="INT")
@click.option("-n", "--dry-run", help="Print training options and exit", is_flag=True)
@click.option(
    "--device", help="Where to train [default: auto]", type=click.Choice(distributed.DEVICE_CHOICES), default="auto"
)
# Dataset.
@click.option("--data", help="Training data (directory or zip)", metavar="PATH")
@click.option(
    "--cond", help="Train conditional model based on dataset labels [default: false]", type=bool, metavar="BOOL"
)
@click.option("--subset", help="Train with only N images [default: all]", type=int, metavar="INT")
@click.option("--mirror", help="Enable dataset x-flips [default: false]", type=bool, metavar="BOOL")
# Base configuration.
@click.option("--cfg", help="Base config [default: auto]", type=click.Choice(CFG_CHOICES))
@click.option("--gamma", help="Override R1 gamma", type=FINITE_FLOAT)
@click.option("--kimg", help="Override training duration (thousands of images)", type=FINITE_FLOAT, metavar="KIMG")
@click.option("--batch", help="Override batch size", type=int, metavar="INT")
@click.option(
    "--tick",
    help=f"Override kimg per status line (tick) [default: {loop_defaults.KIMG_PER_TICK}; tiny preset: {opts.TINY['kimg_per_tick']}]",
    type=FINITE_FLOAT,
    metavar="KIMG",
)
# Augmentation.
@click.option("--aug", help=f"Augmentation mode [default: {opts.AUG}]", type=click.Choice(["noaug", "ada", "fixed"]))
@click.option("--p", help="Augmentation probability for --aug=fixed", type=FINITE_FLOAT)
@click.option("--target", help=f"ADA target value for --aug=ada [default: {opts.ADA_TARGET}]", type=FINITE_FLOAT)
@click.option("--augpipe", help=f"Augmentation pipeline [default: {opts.AUGPIPE}]", type=click.Choice(AUGPIPE_CHOICES))
@click.option(
    "--apa", help="Adaptive pseudo augmentation (Deceive D) [default: false]", type=bool, metavar="BOOL", default=False
)
@click.option("--apa-target", help=f"APA target value for --apa=1 [default: {opts.APA_TARGET}]", type=FINITE_FLOAT)
@click.option(
    "--with-dataaug",
    help="With --apa=1: also augment D's inputs (--augpipe) with APA's p, one p for both [default: false]",
    type=bool,
    metavar="BOOL",
)
# AdaptiveMix.
@click.option(
    "--adaptivemix", help="Enable adaptivemix for the discriminator inputs [default: false]", type=bool, metavar="BOOL"
)
@click.option(
    "--noise-std",
    "--noise_std",  # The release's spelling.
    "noise_std",
    help=f"inhibition parameter: std of the AdaptiveMix target noise [default: {adaptivemix.NOISE_STD}]",
    type=FINITE_FLOAT,
)
@click.option(
    "--adaptivemix-form",
    help=f"release: authors' StyleGAN2 code; paper: reals mixed with fakes, L2 [default: {adaptivemix.DEFAULT_FORM}]",
    type=click.Choice(adaptivemix.FORMS),
    default=adaptivemix.DEFAULT_FORM,
)
@click.option(
    "--adaptivemix-weight",
    help=f"Weight of the AdaptiveMix shrinkage term [default: {adaptivemix.WEIGHT:g}]",
    type=FINITE_FLOAT,
    default=adaptivemix.WEIGHT,
)
# Techniques of Salimans et al. 2016 and the Bures-metric GAN (all off by default).
@click.option(
    "--fm-weight",
    help="Feature matching: weight of ||E f(real) - E f(fake)||^2 in G's loss [default: 0]",
    type=FINITE_FLOAT,
)
@click.option(
    "--label-smoothing",
    help="One-sided label smoothing: D's real target alpha, e.g. 0.9 [default: 1 = off]",
    type=FINITE_FLOAT,
)
@click.option(
    "--bures-weight",
    help="Bures diversity matching: weight of the squared Bures distance in G's loss [default: 0]",
    type=FINITE_FLOAT,
)
@click.option(
    "--bures-alt",
    help="Alt-Bures: G's updates alternate GAN loss and Bures term [default: false]",
    type=bool,
    metavar="BOOL",
)
@click.option(
    "--hist-avg-weight",
    help="Historical averaging of G and D: weight of ||theta - mean past theta||^2 [default: 0]",
    type=FINITE_FLOAT,
)
@click.option(
    "--mbdisc",
    help="Minibatch discrimination in D's head, joining minibatch-std [default: false]",
    type=bool,
    metavar="BOOL",
)
# Transfer learning and resume.
@click.option(
    "--resume",
    help="latest | training-state .pt | run dir (exact) | network pkl, URL or name (transfer)",
    metavar="PKL",
)
@click.option("--freezed", help="Freeze-D [default: 0 layers]", type=int, metavar="INT")
# Performance.
@click.option("--fp32", help="Disable mixed-precision training", type=bool, metavar="BOOL")
@click.option("--nhwc", help="Use NHWC memory format with FP16", type=bool, metavar="BOOL")
@click.option("--nobench", help="Disable cuDNN benchmarking", type=bool, metavar="BOOL")
@click.option("--allow-tf32", help="Allow PyTorch to use TF32 internally", type=bool, metavar="BOOL")
@click.option(
    "--workers",
    help=f"Override number of DataLoader workers [default: {loop_defaults.NUM_WORKERS}]",
    type=int,
    metavar="INT",
)
@click.option(
    "--trust-module",
    help="Module whose classes snapshots and options may name (your own networks), e.g. mypkg; "
    "repeatable [default: $GAN_TRUSTED_MODULES]",
    metavar="NAME",
    multiple=True,
)
@click.option(
    "--trust-detector",
    help="Detector file/URL trusted to hold TorchScript (code); repeatable [default: $GAN_TRUSTED_DETECTORS]",
    metavar="PATH",
    multiple=True,
)
@click.option(
    "--deterministic",
    help="Deterministic algorithms (exactly reproducible on CPU) [default: false]",
    type=bool,
    metavar="BOOL",
)
def main(ctx, outdir, dry_run, device, resume, kimg, trust_module, trust_detector, **config_kwargs):
    """Train a GAN using the techniques of StyleGAN2-ADA, with AdaptiveMix and APA."""
    with click_errors():
        trust.trust_module_option(trust_module)
    detectors.trust_detectors(trust_detector)
    try:
        device = distributed.resolve_device(device)
    except ValueError as err:
        raise click.UsageError(f"--device={device}: {err}") from None
    rank = distributed.torchrun_rank()
    if rank is not None:  # torchrun: every process runs main(); rank 0 names and creates the run directory.
        world_size = int(os.environ["WORLD_SIZE"])
        if config_kwargs["gpus"] not in (None, world_size):
            raise click.UsageError(
                f"--gpus={config_kwargs['gpus']} differs from torchrun's world size {world_size}; omit --gpus"
            )
        config_kwargs["gpus"] = world_size
        distributed.init_process_group(device, rank, world_size, "env://")
    desc = None
    if resume_cli.is_exact_resume(resume):
        sources = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
        given = {
            name: value
            for name, value in dict(config_kwargs, kimg=kimg).items()
            if ctx.get_parameter_source(name) in sources and not (name == "gpus" and rank is not None)
        }
        args = resume_cli.exact_resume_options(resume, outdir, given)
        if rank in (None, 0):
            print(f'Continuing run "{args.run_dir}" from "{args.resume_state}"')
    else:
        if config_kwargs["data"] is None:
            raise click.UsageError("--data is required (a dataset zip or folder made with dataset_tool.py)")
        if config_kwargs["metrics"] is None:
            config_kwargs["metrics"] = ["fid50k_full"] if device == "cuda" else []
        config_kwargs = {k: v for k, v in config_kwargs.items() if v is not None}
        args, desc = build_training_options(outdir=outdir, resume=resume, kimg=kimg, device=device, **config_kwargs)
        args.run_dir = next_run_dir(outdir, desc)
        if rank is not None:
            shared = [args.run_dir]
            torch.distributed.broadcast_object_list(shared, src=0)
            args.run_dir = shared[0]
    args.device = device
    if rank not in (None, 0):
        if not dry_run:
            torch.distributed.barrier()  # Wait until rank 0 has created the run directory.
            run_launch(args, device)
        return

    print_summary(args, device)
    # Everything that can be refused is checked before the run directory is created or touched, in a dry run too.
    if "resume_pkl" in args:
        transfer.check_transfer_pickle(args.resume_pkl)
    with click_errors():
        detector_check.check_detectors(
            args.metrics, args.get("metric_kwargs", {}), resolution=args.training_set_kwargs.resolution
        )
    run_checks.check_writable_folder(args.run_dir if "resume_state" in args else outdir)
    if dry_run:
        if "resume_state" in args:
            run_checks.check_run_dir_free(args.run_dir)  # A real start takes the lock instead.
        print("Dry run; exiting.")
        return
    lock = start_run_dir(args, outdir, desc)
    if rank is not None:
        torch.distributed.barrier()
    print("Launching processes...")
    torch.multiprocessing.set_start_method("spawn", force=True)
    try:
        run_launch(args, device)
    finally:
        lock.release()


def print_summary(args: dnnlib.EasyDict, device: str) -> None:
    print("\nTraining options:")
    print(json.dumps(args, indent=2))
    print()
    print(f"Output directory:   {args.run_dir}")
    print(f"Training data:      {args.training_set_kwargs.path}")
    print(f"Training duration:  {args.total_kimg} kimg")
    print(f"Number of GPUs:     {args.num_gpus}")
    print(f"Device:             {device}")
    print(f"Number of images:   {args.training_set_kwargs.max_size}")
    print(f"Image resolution:   {args.training_set_kwargs.resolution}")
    real = args.get("metric_kwargs", {}).get("real_dataset_kwargs")
    print(f"Metric real data:   {real.path if real else 'the training data'}")
    print(f"Conditional model:  {args.training_set_kwargs.use_labels}")
    print(f"Dataset x-flips:    {args.training_set_kwargs.xflip}")
    print(f"AdaptiveMix:        {adaptivemix_options(args) is not None}")
    print(f"Techniques:         {describe_techniques(args)}")
    print()


if __name__ == "__main__":
    main()
