"""progress.png and the HTML comparison report: written atomically, images that decode and show something, the
training loop's hook (figures off without matplotlib, a plotting error is one warning), and the CLI."""

import base64
import io
import json
import os
import re

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner
from test_report_compare import AMIX, fid_run
from test_training_loop import tiny_loop_kwargs

from dnnlib import atomic
from training import report
from training.image_grid import load_thumbnail, save_image_grid
from training.training_loop import training_loop


def decode(png: bytes) -> np.ndarray:
    with PIL.Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def assert_drawn(pixels: np.ndarray, min_size=(300, 300)) -> None:
    """An image of at least `min_size` that is not blank: many colours (curves, text, a grid)."""
    assert pixels.shape[0] >= min_size[1] and pixels.shape[1] >= min_size[0]
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50


def add_grid(folder, name="fakes000008.png", value=0.5):
    images = np.full([4, 3, 8, 8], value, dtype=np.float32)
    save_image_grid(images, os.path.join(folder, name), drange=(0, 1), grid=(2, 2))


def test_load_thumbnail_keeps_the_aspect_and_small_grids(tmp_path):
    images = np.zeros([8, 1, 10, 10], dtype=np.float32)  # A 4x2 grid of grey images: 40 x 20 pixels.
    save_image_grid(images, str(tmp_path / "g.png"), drange=(0, 1), grid=(4, 2))
    assert load_thumbnail(str(tmp_path / "g.png"), 20).size == (20, 10)
    small = load_thumbnail(str(tmp_path / "g.png"), 100)
    assert small.size == (40, 20) and small.mode == "RGB"


@pytest.mark.slow
def test_progress_png_of_a_run_and_of_a_run_without_metrics(tmp_path):
    folder = fid_run(tmp_path / "run", 0, {0: 400.0, 2: 100.0, 4: 90.0})
    add_grid(folder)
    path = report.write_progress(folder)
    assert path == os.path.join(folder, "progress.png")
    with open(path, "rb") as f:
        assert_drawn(decode(f.read()), (900, 600))
    assert not [n for n in os.listdir(folder) if atomic.is_temp_name(n)]
    bare = fid_run(tmp_path / "bare", 0, {})  # No metrics and no grid: curves of the ticks only.
    with open(report.write_progress(bare), "rb") as f:
        assert_drawn(decode(f.read()))


def test_progress_png_of_a_dcgan_lab_folder(tmp_path):
    lines = [{"kimg": k, "fid": 100.0 / k, "kid": 0.1 / k, "seconds": 60.0 * k} for k in (1, 2, 3)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    add_grid(str(tmp_path), "fakes0003000.png")
    with open(report.write_progress(str(tmp_path)), "rb") as f:
        assert_drawn(decode(f.read()), (900, 300))


def test_html_report_is_one_file_whose_images_decode(tmp_path):
    for seed in (0, 1):
        add_grid(fid_run(tmp_path / f"plain-s{seed}", seed, {2: 100.0 + seed, 4: 90.0}))
        fid_run(tmp_path / f"amix-s{seed}", seed, {2: 80.0, 4: 70.0 - seed}, AMIX, sec=20.0)
    out = tmp_path / "report.html"
    text = report.write_report([str(tmp_path)], str(out))
    assert "B - A (fid50k_full" in text
    html = out.read_text()
    assert not re.search(r'(src|href)="(?!data:)', html)  # Nothing outside the file.
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 2 + 2  # fid curves, training statistics, the two grids of the plain runs.
    for data in images[:2]:
        assert_drawn(decode(base64.b64decode(data)), (600, 200))
    assert decode(base64.b64decode(images[2])).shape[:2] == (16, 16)
    assert "<td>loss_kwargs.noise_std</td><td>0.05</td><td>(absent)</td>" in html
    assert "95 % CI (paired t)" in html and "seeds 0, 1" in html


def test_hook_without_matplotlib_says_once_and_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "plots_available", lambda: False)
    lines = []
    figure = report.ProgressFigure(str(tmp_path), log=lines.append)
    figure.update()
    figure.update()
    assert lines == [report.PLOTS_OFF] and "pip install -e .[plots]" in lines[0]
    assert not os.path.exists(tmp_path / "progress.png")


def test_hook_skips_snapshots_sooner_than_ten_drawing_times(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(report, "write_progress", lambda run_dir: drawn.append(run_dir))
    figure = report.ProgressFigure(str(tmp_path))
    figure.update()
    figure.last_cost = 3600.0  # As if drawing took an hour: the next snapshots are too soon, the final one is not.
    figure.update()
    figure.update(final=True)
    assert drawn == [str(tmp_path)] * 2


def test_hook_turns_a_plotting_error_into_one_warning(tmp_path, monkeypatch):
    def broken(run_dir):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(report, "write_progress", broken)
    lines = []
    report.ProgressFigure(str(tmp_path), log=lines.append).update()
    assert lines == ["warning: progress.png not updated (RuntimeError: no fonts)"]


@pytest.mark.slow
def test_training_loop_writes_progress_png(tiny_zip, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    training_loop(**tiny_loop_kwargs(tiny_zip, run_dir, image_snapshot_ticks=2, total_kimg=0.016, metrics=[]))
    with open(run_dir / "progress.png", "rb") as f:
        assert_drawn(decode(f.read()), (900, 400))
    # The figure of the last snapshot holds the last tick (training_loop alone writes no training_options.json).
    run = report.read_train_run(str(run_dir))
    assert run.grid == str(run_dir / "fakes000000.png") and run.stats["Progress/kimg"].x[-1] == pytest.approx(0.016)
    assert os.path.getmtime(run_dir / "progress.png") >= os.path.getmtime(run_dir / "stats.jsonl")


def test_cli_draws_progress_and_report_and_names_bad_input(tmp_path):
    folder = fid_run(tmp_path / "runs" / "a", 0, {2: 100.0})
    toy = tmp_path / "toy"
    toy.mkdir()
    line = {
        "run": "grid9-std-plain-s0",
        "dataset": "grid9",
        "objective": "std",
        "variant": "plain",
        "seed": 0,
        "steps": 10,
        "modes": 3,
        "hq_pct": 10.0,
        "mmd": 0.1,
        "num_modes": 9,
        "seconds": 1.0,
    }
    (toy / "results.jsonl").write_text(json.dumps(line) + "\n")
    result = CliRunner().invoke(report.main, [str(tmp_path / "runs"), str(toy)])
    assert result.exit_code == 0, result.output
    assert f"wrote {folder}/progress.png" in result.output and "skipped grid9-std-plain-s0" in result.output
    out = tmp_path / "r.html"
    result = CliRunner().invoke(report.main, [str(tmp_path / "runs"), str(toy), f"--out={out}"])
    assert result.exit_code == 0 and out.is_file(), result.output
    result = CliRunner().invoke(report.main, [str(tmp_path / "missing")])
    assert result.exit_code == 1 and "no run here" in result.output


@pytest.mark.parametrize("name", ["results.jsonl"])
def test_cli_rejects_a_classify_results_file(tmp_path, name):
    (tmp_path / name).write_text(json.dumps({"method": "ce", "accuracy": 0.9}) + "\n")
    result = CliRunner().invoke(report.main, [str(tmp_path)])
    assert result.exit_code == 1 and "not a labs.dcgan, labs.ssl or labs.toy results file" in result.output


def two_seed_pairs(folder) -> None:
    """Plain and AdaptiveMix runs of seeds 0 and 1 with fid50k_full at 2 and 4 kimg (AdaptiveMix at 20 s a tick)."""
    for seed in (0, 1):
        fid_run(folder / f"plain-s{seed}", seed, {2: 100.0 + seed, 4: 90.0})
        fid_run(folder / f"amix-s{seed}", seed, {2: 80.0, 4: 70.0 - seed}, AMIX, sec=20.0)


def test_cli_metrics_figure_panels_labels_and_bad_input(tmp_path, monkeypatch):
    two_seed_pairs(tmp_path)
    from training import report_plots

    seen = {}
    draw = report_plots.metrics_figure
    monkeypatch.setattr(
        report_plots, "metrics_figure", lambda g, names, m, clock: seen.update(names=names) or draw(g, names, m, clock)
    )
    out = tmp_path / "fig.png"
    args = [str(tmp_path), f"--figure={out}", "--metrics=fid50k_full", "--labels=AdaptiveMix;plain"]
    result = CliRunner().invoke(report.main, args)
    assert result.exit_code == 0, result.output
    assert seen["names"] == {"A": "A: AdaptiveMix", "B": "B: plain"}  # Groups in folder order: amix-s0 first.
    pixels = decode(out.read_bytes())
    assert pixels.shape[:2] == (round(80 * 4.6), 80 * 15)  # One row of two panels (one empty) at 80 dpi.
    assert_drawn(pixels, (600, 200))
    # An unknown metric, a wrong label count or a lone option is one line.
    bad = CliRunner().invoke(report.main, [str(tmp_path), f"--figure={out}", "--metrics=fid50k_full,kid"])
    assert bad.exit_code == 1 and "no run has kid (these runs have: fid50k_full)" in bad.output
    bad = CliRunner().invoke(report.main, [str(tmp_path), f"--figure={out}", "--metrics=fid50k_full", "--labels=x"])
    assert bad.exit_code == 1 and "1 labels for 2 groups" in bad.output
    bad = CliRunner().invoke(report.main, [str(tmp_path), f"--figure={out}"])
    assert bad.exit_code == 2 and "--figure and --metrics go together" in bad.output


def test_html_report_with_step_costs_compares_equal_compute(tmp_path):
    """AdaptiveMix at 2x per kimg: T = min(plain's 4 kimg, AdaptiveMix's 4 x 2) = 4 plain-kimg."""
    two_seed_pairs(tmp_path)
    out = tmp_path / "report.html"
    args = [str(tmp_path), f"--out={out}", "--step-cost=adaptivemix=True:2"]
    result = CliRunner().invoke(report.main, args)
    assert result.exit_code == 0, result.output
    assert "equal time = at T = 4 kimg at cost 1 (--step-cost)" in result.output
    assert "Equal time T = 4 kimg at cost 1 (--step-cost)." in out.read_text()
    bad = CliRunner().invoke(report.main, [str(tmp_path), "--step-cost=adaptivemix=True:2"])
    assert bad.exit_code == 2 and "add --out=report.html or --figure=fig.png" in bad.output


def test_metrics_figure_with_step_costs_adds_the_equal_compute_panel(tmp_path, monkeypatch):
    """AdaptiveMix at 2x per kimg: its curve's clock is kimg x 2, plain's kimg; one row of two drawn panels."""
    two_seed_pairs(tmp_path)
    from training import report_plots

    seen = {}
    draw = report_plots.metrics_figure

    def spy(groups, names, metrics, clock=None):
        seen.update(
            clock=clock, hours={g.label: [list(r.metrics["fid50k_full"].hours) for r in g.runs] for g in groups}
        )
        return draw(groups, names, metrics, clock)

    monkeypatch.setattr(report_plots, "metrics_figure", spy)
    out = tmp_path / "fig.png"
    args = [str(tmp_path), f"--figure={out}", "--metrics=fid50k_full", "--step-cost=adaptivemix=True:2"]
    result = CliRunner().invoke(report.main, args)
    assert result.exit_code == 0, result.output
    assert seen["clock"] == "kimg at cost 1 (--step-cost)"
    assert seen["hours"] == {"A": [[4.0, 8.0], [4.0, 8.0]], "B": [[2.0, 4.0], [2.0, 4.0]]}
    pixels = decode(out.read_bytes())
    assert pixels.shape[:2] == (round(80 * 4.6), 80 * 15)
    for half in (pixels[:, :600], pixels[:, 600:]):  # Both panels hold curves, not an empty right cell.
        assert_drawn(half, (300, 200))
