"""fid5k_full: FID of 5,000 generated images against every real image (the small-data studies' protocol)."""

import dnnlib
from metrics import frechet_inception_distance, metric_main


def test_fid5k_full_uses_every_real_image_and_5000_generated(monkeypatch):
    calls = []

    def fake_compute_fid(opts, max_real, num_gen, **kwargs):
        calls.append((dict(opts.dataset_kwargs), opts.capped(max_real), opts.capped(num_gen)))
        return 12.5

    monkeypatch.setattr(frechet_inception_distance, "compute_fid", fake_compute_fid)
    dataset_kwargs = dnnlib.EasyDict(class_name="training.dataset.ImageFolderDataset", path="x.zip", max_size=1000)
    dataset_kwargs.xflip = True
    record = metric_main.calc_metric("fid5k_full", G=None, dataset_kwargs=dataset_kwargs)
    assert record.results == {"fid5k_full": 12.5}
    ((kwargs, max_real, num_gen),) = calls
    # The training subset and x-flips are dropped: the real statistics are the whole data set as stored.
    assert kwargs["max_size"] is None and kwargs["xflip"] is False and kwargs["path"] == "x.zip"
    assert max_real is None and num_gen == 5000
    assert dataset_kwargs.max_size == 1000  # The caller's dict is not changed.

    calls.clear()
    metric_main.calc_metric("fid5k_full", G=None, dataset_kwargs=dataset_kwargs, num_images=300)
    assert calls[0][1:] == (300, 300)  # --num-images caps both counts, as for every metric.
