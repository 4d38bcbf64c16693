"""Names and layouts that saved configurations used before the one vocabulary, and today's for them.

AdaptiveMix is `adaptivemix` everywhere (`ada` means ADA only), the non-saturating objective is `ns`, one-sided
label smoothing is `label_smoothing` and historical averaging `hist_avg_weight`, in train.py and in every lab.
Readers of saved configurations (lab snapshots, labs.toy's results.jsonl, the run reports) map the old names
with `current_names`, so files written before keep reading; options a lab gained later are filled in with the
value those runs used (`with_added_fields`). train.py's training_options.json held AdaptiveMix's
settings in `adaptivemix_kwargs` for the training loop to unpack; today they are the loss's own keyword
arguments in `loss_kwargs` (`adaptivemix`, `adaptivemix_form`, `adaptivemix_weight`, `noise_std`): every
reader of a saved file calls `move_adaptivemix_kwargs`, which brings the old layout into today's, so the rest
of the code (`adaptivemix_options`) knows one layout.
"""

from __future__ import annotations

from typing import Any

import adaptivemix
import dnnlib

RENAMED_FIELDS = {
    "amix_form": "adaptivemix_form",  # labs.dcgan / labs.toy loss settings.
    "ada_weight": "adaptivemix_weight",  # labs.dcgan loss settings, labs.ssl config.
    "ada_distance": "adaptivemix_distance",  # labs.ssl config.
    "ls_alpha": "label_smoothing",  # labs.toy config.
    "ha_weight": "hist_avg_weight",  # labs.toy config.
}
RENAMED_OBJECTIVES = {"std": "ns"}  # labs.toy's name of the non-saturating GAN.
# Options a lab gained after runs were saved, with the value that does what those runs did (the code before the
# option): labs.dcgan's packing and stacking (off) and AdaptiveMix's noise scale (absolute, the paper's sigma).
ADDED_FIELDS = {"dcgan": {"pack": 1, "stack": 1, "losses": {"noise_scale": "absolute"}}}


def current_names(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of `config` with old field names (at any depth of nested dicts) and an old `objective` value renamed."""
    out = {}
    for key, value in config.items():
        key = RENAMED_FIELDS.get(key, key)
        if isinstance(value, dict):
            value = current_names(value)
        elif key == "objective" and isinstance(value, str):
            value = RENAMED_OBJECTIVES.get(value, value)
        out[key] = value
    return out


def with_added_fields(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """A copy of `config` (today's names) with the options `kind`'s lab gained later filled in where missing
    (`ADDED_FIELDS`), so that runs saved before and after an option was added group as one configuration. An
    empty config (options unknown) stays empty."""
    return _fill(config, ADDED_FIELDS.get(kind, {})) if config else dict(config)


def _fill(config: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    for key, value in added.items():
        if isinstance(value, dict):
            if isinstance(out.get(key), dict):
                out[key] = _fill(out[key], value)
        elif key not in out:
            out[key] = value
    return out


def adaptivemix_options(args: dict) -> dict | None:
    """The AdaptiveMix options {adaptivemix_form, adaptivemix_weight, noise_std} of training options in today's
    layout (`loss_kwargs`), or None when off. Options read from a file go through `move_adaptivemix_kwargs` first."""
    loss = args.get("loss_kwargs", {})
    if not loss.get("adaptivemix", False):
        return None
    return dict(
        adaptivemix_form=loss.get("adaptivemix_form", adaptivemix.DEFAULT_FORM),
        adaptivemix_weight=loss.get("adaptivemix_weight", adaptivemix.WEIGHT),
        noise_std=loss.get("noise_std", adaptivemix.NOISE_STD),
    )


def move_adaptivemix_kwargs(args: dict) -> None:
    """Bring saved training options of the old layout (`adaptivemix_kwargs`) into today's (`loss_kwargs`) in place;
    the same loss is built from either. The old layout's alpha, distance and stop_gradient followed from the
    form (alpha 1, the release's cosine with stop-gradient, the paper's L2 without); another alpha is refused."""
    old = args.pop("adaptivemix_kwargs", None)
    if old is None:
        return
    if old.get("alpha", 1.0) != 1.0:
        raise ValueError(f"adaptivemix_kwargs has alpha={old['alpha']}; only the release's alpha 1 can be resumed")
    args["loss_kwargs"] = dnnlib.EasyDict(args.get("loss_kwargs", {}))
    args["loss_kwargs"].update(
        adaptivemix=True,
        adaptivemix_form=old.get("variant", adaptivemix.DEFAULT_FORM),
        adaptivemix_weight=old.get("weight", adaptivemix.WEIGHT),
        noise_std=old.get("noise_std", adaptivemix.NOISE_STD),
    )
