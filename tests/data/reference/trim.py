"""Writes the trimmed `inception_fid_cases.pt` kept in this folder from the full file.

The full file holds four input cases of 1-3 images each. The network runs in eval mode, so every image is
processed independently: one image per case exercises the same resize, layers and outputs as the full batch.
This keeps the first image of `c64` (3 images) and `c128x96` (2 images); `c299` (2 images, no resize, so
without the 299x299 float `net_input`) and `c400x320` (1 image) stay whole. Every `<case>.<key>` tensor of a
trimmed case is sliced along its batch axis; metadata entries are copied as they are.

Usage: python tests/data/reference/trim.py FULL_FILE OUT_FILE
"""

import sys

import torch

KEEP_IMAGES = {"c64": 1, "c128x96": 1}


def trim(full: dict) -> dict:
    """A copy of the reference dict with the cases of KEEP_IMAGES cut to their first images."""
    out = {}
    for key, value in full.items():
        case = key.split(".", 1)[0]
        if case in KEEP_IMAGES and torch.is_tensor(value) and value.ndim > 0:
            value = value[: KEEP_IMAGES[case]].clone()
        out[key] = value
    out["note_trimmed"] = "cases " + ",".join(f"{c}[:{n}]" for c, n in KEEP_IMAGES.items()) + " kept of the full file"
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/data/reference/trim.py FULL_FILE OUT_FILE")
    torch.save(trim(torch.load(sys.argv[1], weights_only=True)), sys.argv[2])
