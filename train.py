"""Train a StyleGAN2-ADA-style GAN, optionally with AdaptiveMix, ADA and APA.

Examples:
    python train.py --outdir=runs --data=afhqcat5k.zip --gpus=8 --aug=ada --adaptivemix=1
    python train.py --outdir=runs --data=fmnist32.zip --cfg=tiny --kimg=20 --adaptivemix=1 --device=cpu
    python train.py --outdir=runs --resume=latest          # continue the newest run exactly
"""

from __future__ import annotations

import json
import os

import click
import torch

import dnnlib
from training import options as opts
from training import distributed, run_state
from training.options import AUGPIPE_CHOICES, CFG_CHOICES, build_training_options, next_run_dir, parse_comma_list
from training.techniques.train_options import describe_techniques


class CommaList(click.ParamType):
    name = "list"

    def convert(self, value, param, ctx):
        return value if isinstance(value, list) else parse_comma_list(value)


def subprocess_fn(rank: int, args: dnnlib.EasyDict) -> None:
    """Entry point of every training process (inside the process group `distributed.launch` set up): log, loop."""
    from torch_utils import training_stats
    from training import training_loop

    log = dnnlib.util.Logger(file_name=os.path.join(args.run_dir, "log.txt"), file_mode="a", should_flush=True)
    try:
        device = distributed.process_device(args.device, rank)
        training_stats.init_multiprocessing(rank=rank, sync_device=device if args.num_gpus > 1 else None)
        training_loop.training_loop(rank=rank, **dict(args, device=device))
    finally:
        log.close()


def exact_resume_options(resume: str, outdir: str, kimg: float | None) -> dnnlib.EasyDict:
    """Options to continue a run exactly: from `latest` (newest state in --outdir), a state file or a run dir."""
    if resume == "latest":
        state_path = run_state.find_latest_state(outdir)
        if state_path is None:
            raise click.UsageError(f"--resume=latest: no training-state-*.pt in any run under --outdir={outdir}")
    elif os.path.isdir(resume):
        state_path = run_state.latest_state_in_run(resume)
        if state_path is None:
            raise click.UsageError(f"--resume={resume}: that run directory has no training-state-*.pt yet")
    else:
        state_path = resume
    run_dir = os.path.dirname(os.path.abspath(state_path))
    options_path = os.path.join(run_dir, "training_options.json")
    if not os.path.isfile(options_path):
        raise click.UsageError(f"--resume={resume}: {options_path} is missing; is {run_dir} a run directory?")
    with open(options_path, "rt", encoding="utf-8") as f:
        args = json.load(f, object_hook=dnnlib.EasyDict)
    args.run_dir = run_dir
    args.resume_state = state_path
    args.pop("resume_pkl", None)
    if kimg is not None:
        args.total_kimg = kimg
    return args


def is_exact_resume(resume: str | None) -> bool:
    return resume is not None and (resume == "latest" or resume.endswith(".pt") or os.path.isdir(resume))


@click.command(context_settings=dict(help_option_names=["-h", "--help"]))
@click.pass_context
# General options.
@click.option("--outdir", help="Where to save the results", required=True, metavar="DIR")
@click.option("--gpus", help="Number of GPUs (processes) to use [default: 1]", type=int, metavar="INT")
@click.option("--snap", help=f"Snapshot interval [default: {opts.SNAP_TICKS} ticks]", type=int, metavar="INT")
@click.option("--metrics", help='Comma-separated list or "none" [default: fid50k_full on GPU, none on CPU]', type=CommaList())
@click.option("--metric-detector", help="Detector file/URL for every metric (e.g. a domain detector: works offline)", metavar="PATH")
@click.option("--detector-dir", help="Folder of local detector copies [default: $GAN_DETECTOR_DIR]", metavar="DIR")
@click.option("--metric-images", help="Cap real/generated images per metric (quick checks, not comparable with 50k)", type=int, metavar="INT")
@click.option("--seed", help=f"Random seed [default: {opts.RANDOM_SEED}]", type=int, metavar="INT")
@click.option("-n", "--dry-run", help="Print training options and exit", is_flag=True)
@click.option("--device", help="Where to train [default: auto]", type=click.Choice(distributed.DEVICE_CHOICES), default="auto")
# Dataset.
@click.option("--data", help="Training data (directory or zip)", metavar="PATH")
@click.option("--cond", help="Train conditional model based on dataset labels [default: false]", type=bool, metavar="BOOL")
@click.option("--subset", help="Train with only N images [default: all]", type=int, metavar="INT")
@click.option("--mirror", help="Enable dataset x-flips [default: false]", type=bool, metavar="BOOL")
# Base configuration.
@click.option("--cfg", help="Base config [default: auto]", type=click.Choice(CFG_CHOICES))
@click.option("--gamma", help="Override R1 gamma", type=float)
@click.option("--kimg", help="Override training duration (thousands of images)", type=float, metavar="KIMG")
@click.option("--batch", help="Override batch size", type=int, metavar="INT")
@click.option("--tick", help=f"Override kimg per status line (tick) [default: {opts.KIMG_PER_TICK}; tiny preset: {opts.TINY['kimg_per_tick']}]", type=float, metavar="KIMG")
# Augmentation.
@click.option("--aug", help=f"Augmentation mode [default: {opts.AUG}]", type=click.Choice(["noaug", "ada", "fixed"]))
@click.option("--p", help="Augmentation probability for --aug=fixed", type=float)
@click.option("--target", help=f"ADA target value for --aug=ada [default: {opts.ADA_TARGET}]", type=float)
@click.option("--augpipe", help=f"Augmentation pipeline [default: {opts.AUGPIPE}]", type=click.Choice(AUGPIPE_CHOICES))
@click.option("--apa", help="Adaptive pseudo augmentation (Deceive D) [default: false]", type=bool, metavar="BOOL", default=False)
@click.option("--apa-target", help=f"APA target value for --apa=1 [default: {opts.APA_TARGET}]", type=float)
@click.option("--with-dataaug", help="With --apa=1: also augment D's inputs (--augpipe) with APA's p, one p for both [default: false]",
              type=bool, metavar="BOOL")
# AdaptiveMix.
@click.option("--adaptivemix", help="Enable adaptivemix for the discriminator inputs [default: false]", type=bool, metavar="BOOL")
@click.option("--noise_std", "noise_std", help=f"inhibition parameter: std of the AdaptiveMix target noise [default: {opts.NOISE_STD}]", type=float)
@click.option("--adaptivemix-variant", help=f"release: authors' StyleGAN2 code; paper: reals mixed with fakes, L2 [default: {opts.ADAPTIVEMIX_VARIANT}]",
              type=click.Choice(opts.ADAPTIVEMIX_VARIANTS), default=opts.ADAPTIVEMIX_VARIANT)
@click.option("--adaptivemix-weight", help=f"Weight of the AdaptiveMix shrinkage term [default: {opts.ADAPTIVEMIX_WEIGHT:g}]", type=float,
              default=opts.ADAPTIVEMIX_WEIGHT)
# Techniques of Salimans et al. 2016 and the Bures-metric GAN (all off by default).
@click.option("--fm-weight", help="Feature matching: weight of ||E f(real) - E f(fake)||^2 in G's loss [default: 0]", type=float)
@click.option("--label-smoothing", help="One-sided label smoothing: D's real target alpha, e.g. 0.9 [default: 1 = off]", type=float)
@click.option("--bures-weight", help="Bures diversity matching: weight of the squared Bures distance in G's loss [default: 0]", type=float)
@click.option("--bures-alt", help="Alt-Bures: G's updates alternate GAN loss and Bures term [default: false]", type=bool, metavar="BOOL")
@click.option("--hist-avg-weight", help="Historical averaging of G and D: weight of ||theta - mean past theta||^2 [default: 0]", type=float)
@click.option("--mbdisc", help="Minibatch discrimination in D's head, joining minibatch-std [default: false]", type=bool, metavar="BOOL")
# Transfer learning and resume.
@click.option("--resume", help="latest | training-state .pt | run dir (exact) | network pkl, URL or name (transfer)", metavar="PKL")
@click.option("--freezed", help="Freeze-D [default: 0 layers]", type=int, metavar="INT")
# Performance.
@click.option("--fp32", help="Disable mixed-precision training", type=bool, metavar="BOOL")
@click.option("--nhwc", help="Use NHWC memory format with FP16", type=bool, metavar="BOOL")
@click.option("--nobench", help="Disable cuDNN benchmarking", type=bool, metavar="BOOL")
@click.option("--allow-tf32", help="Allow PyTorch to use TF32 internally", type=bool, metavar="BOOL")
@click.option("--workers", help=f"Override number of DataLoader workers [default: {opts.NUM_WORKERS}]", type=int, metavar="INT")
@click.option("--deterministic", help="Deterministic algorithms (exactly reproducible on CPU) [default: false]", type=bool, metavar="BOOL")
def main(ctx, outdir, dry_run, device, resume, kimg, **config_kwargs):
    """Train a GAN using the techniques of StyleGAN2-ADA, with AdaptiveMix and APA."""
    try:
        device = distributed.resolve_device(device)
    except ValueError as err:
        raise click.UsageError(f"--device={device}: {err}") from None
    rank = distributed.torchrun_rank()
    if rank is not None:  # torchrun: every process runs main(); rank 0 names and creates the run directory.
        world_size = int(os.environ["WORLD_SIZE"])
        if config_kwargs["gpus"] not in (None, world_size):
            raise click.UsageError(f"--gpus={config_kwargs['gpus']} differs from torchrun's world size {world_size}; omit --gpus")
        config_kwargs["gpus"] = world_size
        distributed.init_process_group(device, rank, world_size, "env://")
    if is_exact_resume(resume):
        args = exact_resume_options(resume, outdir, kimg)
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
            distributed.launch(subprocess_fn, args, args.num_gpus, device)
        return

    print_summary(args, device)
    if dry_run:
        print("Dry run; exiting.")
        return
    if "resume_state" not in args:
        print("Creating output directory...")
        os.makedirs(args.run_dir)
        saved = {k: v for k, v in args.items() if k != "device"}
        with open(os.path.join(args.run_dir, "training_options.json"), "wt", encoding="utf-8") as f:
            json.dump(saved, f, indent=2)
    if rank is not None:
        torch.distributed.barrier()
    print("Launching processes...")
    torch.multiprocessing.set_start_method("spawn", force=True)
    distributed.launch(subprocess_fn, args, args.num_gpus, device)


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
    print(f"Conditional model:  {args.training_set_kwargs.use_labels}")
    print(f"Dataset x-flips:    {args.training_set_kwargs.xflip}")
    print(f"AdaptiveMix:        {'adaptivemix_kwargs' in args}")
    print(f"Techniques:         {describe_techniques(args)}")
    print()


if __name__ == "__main__":
    main()
