"""The capstone's recipes: every choice of a training run, as frozen dataclasses (no TensorFlow needed)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cnnkit._validate import boolean, integer, non_negative_int, one_of, positive_int, probability, real

__all__ = ["Recipe", "RECIPES", "get_recipe", "OPTIMIZERS", "DECAYS", "PRECISIONS", "ABLATIONS", "ablations"]

OPTIMIZERS = ("nesterov", "adamw")
DECAYS = ("linear", "cosine")
PRECISIONS = ("auto", "float32", "bfloat16")  # see cnnkit.devices.resolve_precision


@dataclass(frozen=True)
class Recipe:
    """Every choice of one training run; frozen, so a recipe cannot drift once chosen.

    Model: ``widths[i]`` channels in stage i, ``convs_per_stage`` (1 or 2) plain
    convolutions in each stage, ``residual[i]`` whether stage i ends with a residual block,
    ``identity_init`` whether the 3x3 convolutions start partly as identities; ``whiten_patch`` is the patch size of the fixed whitening
    layer (0: an ordinary trainable 3x3 convolution of ``stem_width`` channels instead);
    ``whiten_bias_epochs`` e > 0 adds a bias to its outputs that learns during the first e
    epochs and is frozen after (airbench).
    Schedule: the learning rate rises linearly from 0 to ``learning_rate`` over
    ``warmup_epochs`` and decays (``decay``: "linear" or "cosine") to
    ``final_lr_fraction * learning_rate`` at the last step.
    ``batch_size`` and ``learning_rate`` are per replica: on k devices the global batch is
    ``k * batch_size`` and the rate is scaled (:func:`cnnkit.devices.scaled_learning_rate`).
    Precision: ``"float32"``, ``"bfloat16"`` (Keras' mixed_bfloat16 policy) or ``"auto"``
    (bfloat16 only where the hardware runs it faster; :func:`cnnkit.devices.resolve_precision`).
    Batch norm: ``bn_scale=False`` freezes every scale gamma at 1 (only the shift beta
    learns); ``bn_weight_decay=False`` keeps batch norm's parameters out of weight decay;
    ``bn_shift_lr`` multiplies the learning rate of batch norm's shifts beta (airbench: 64).
    ``bn_group`` g > 0 computes batch norm's training statistics over groups of g images
    ("ghost" batch norm; ``batch_size`` must be a multiple of g); 0 over the whole batch.
    ``ema_momentum`` m > 0 evaluates an exponential moving average of the weights,
    ``w_avg <- m * w_avg + (1 - m) * w`` after every step, instead of the last weights.
    ``lookahead`` pulls the weights back to a slow copy every 5 steps, more strongly as
    training ends, and keeps the slow copy (:class:`cnnkit.lookahead.Lookahead`, airbench94).
    ``patience`` > 0 stops training after that many epochs without a better validation
    accuracy and keeps the best epoch's weights; 0 trains every epoch of the fixed schedule
    and keeps the last weights (or their average). The average and lookahead need ``patience=0``:
    restoring the best epoch's raw weights would throw it away.
    ``val_fraction`` of every class is held out to watch the run; 0 trains on every
    training image with no validation split (it needs ``patience=0``: under a fixed
    schedule the split serves to choose the recipe, not to train the reported model).
    Augmentation in training: mirror images (``flip``; with ``alternate_flip`` each image is
    mirrored in every other epoch instead of by a fresh coin, :func:`cnnkit.pipeline.alternating_flip`)
    and shifts by up to ``translate`` pixels. Progressive crops: with ``crop`` c > 0 the first
    ``crop_epochs`` epochs train on random c x c windows of the (mirrored) images in place of the
    shifted full images (:func:`cnnkit.pipeline.random_crop`); a step on 24 x 24 crops costs
    about half a step on 32 x 32 images, and the full-size epochs after them train the network
    at the size it is tested at (docs/recipes.md, ninth round: no recipe gained from it).
    Test-time augmentation: the mirror image (``tta``) and, with ``tta_translate`` t > 0,
    the image and its mirror shifted by t pixels up-left and down-right as well
    (:func:`cnnkit.training.predict_proba`).
    """

    name: str
    widths: tuple[int, ...]
    residual: tuple[bool, ...]
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str = "nesterov"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    decay: str = "linear"
    final_lr_fraction: float = 0.0
    label_smoothing: float = 0.2
    dropout: float = 0.0
    convs_per_stage: int = 1
    identity_init: bool = False
    whiten_patch: int = 2
    whiten_stride: int = 1
    whiten_bias_epochs: int = 0
    stem_width: int = 24
    bn_momentum: float = 0.9
    logit_scale: float = 0.125
    flip: bool = True
    alternate_flip: bool = False
    translate: int = 2
    crop: int = 0
    crop_epochs: int = 0
    tta: bool = True
    tta_translate: int = 0
    bn_scale: bool = True
    bn_weight_decay: bool = True
    bn_shift_lr: float = 1.0
    bn_group: int = 0
    ema_momentum: float = 0.0
    lookahead: bool = False
    val_fraction: float = 0.1
    patience: int = 4
    precision: str = "auto"
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if not self.widths:
            raise ValueError("widths must name at least one stage, got an empty tuple")
        for w in self.widths:
            positive_int(w, "widths[i]")
        if len(self.residual) != len(self.widths):
            raise ValueError(f"residual must have one flag per stage ({len(self.widths)}), got {self.residual!r}")
        positive_int(self.epochs, "epochs")
        positive_int(self.batch_size, "batch_size")
        positive_int(self.stem_width, "stem_width")
        non_negative_int(self.patience, "patience")
        for value, name in ((self.learning_rate, "learning_rate"), (self.logit_scale, "logit_scale"),
                            (self.bn_shift_lr, "bn_shift_lr")):
            real(value, name, low=0.0, low_open=True)
        one_of(self.optimizer, "optimizer", OPTIMIZERS)
        one_of(self.decay, "decay", DECAYS)
        one_of(self.precision, "precision", PRECISIONS)
        for value, name in ((self.momentum, "momentum"), (self.label_smoothing, "label_smoothing"),
                            (self.dropout, "dropout"), (self.bn_momentum, "bn_momentum"),
                            (self.final_lr_fraction, "final_lr_fraction"), (self.ema_momentum, "ema_momentum")):
            probability(value, name)
        real(self.val_fraction, "val_fraction", low=0.0, high=1.0, high_open=True)
        if self.val_fraction == 0 and self.patience:
            raise ValueError(f"val_fraction=0 trains on every training image and leaves no validation split, but "
                             f"patience={self.patience} asks for early stopping on one: set patience=0 (train the "
                             "fixed schedule to its end) or hold out a val_fraction > 0")
        real(self.weight_decay, "weight_decay", low=0.0)
        real(self.warmup_epochs, "warmup_epochs", low=0.0, high=self.epochs, high_open=True)
        if self.convs_per_stage not in (1, 2):
            raise ValueError(f"convs_per_stage must be 1 or 2, got {self.convs_per_stage!r}")
        boolean(self.identity_init, "identity_init")
        if self.whiten_patch not in (0, 2, 3):
            raise ValueError(f"whiten_patch must be 0 (no whitening), 2 or 3, got {self.whiten_patch!r}")
        if self.whiten_stride not in (1, 2):
            raise ValueError(f"whiten_stride must be 1 or 2, got {self.whiten_stride!r}")
        integer(self.whiten_bias_epochs, "whiten_bias_epochs", minimum=0, maximum=self.epochs)
        if self.whiten_bias_epochs and not self.whiten_patch:
            raise ValueError(f"whiten_bias_epochs={self.whiten_bias_epochs} needs the whitening layer "
                             "(whiten_patch 2 or 3), got whiten_patch=0")
        integer(self.translate, "translate (pixels)", minimum=0, maximum=8)
        integer(self.crop, "crop (pixels)", minimum=0, maximum=64)
        integer(self.crop_epochs, "crop_epochs", minimum=0)
        if bool(self.crop) != bool(self.crop_epochs):
            raise ValueError(f"crop and crop_epochs go together (the crops' size and how many epochs train on them), "
                             f"got crop={self.crop!r}, crop_epochs={self.crop_epochs!r}")
        if self.crop_epochs >= self.epochs:
            raise ValueError(f"crop_epochs={self.crop_epochs} must leave at least one of the {self.epochs} epochs "
                             "on full-size images, the size the model is tested at")
        boolean(self.flip, "flip")
        boolean(self.alternate_flip, "alternate_flip")
        if self.alternate_flip and not self.flip:
            raise ValueError("alternate_flip=True needs flip=True (it decides when each image is mirrored)")
        boolean(self.tta, "tta")
        integer(self.tta_translate, "tta_translate (pixels)", minimum=0, maximum=8)
        if self.tta_translate and not self.tta:
            raise ValueError(f"tta_translate={self.tta_translate} needs tta=True (the shifted views are averaged "
                             "with the mirrored ones)")
        boolean(self.bn_scale, "bn_scale")
        boolean(self.bn_weight_decay, "bn_weight_decay")
        non_negative_int(self.bn_group, "bn_group")
        if self.bn_group and self.batch_size % self.bn_group:
            raise ValueError(f"bn_group={self.bn_group} must divide batch_size={self.batch_size}: batch norm's "
                             "training statistics come from whole groups of bn_group images")
        if self.ema_momentum and self.patience:
            raise ValueError(f"ema_momentum={self.ema_momentum} needs patience=0: early stopping restores the best "
                             f"epoch's raw weights (patience={self.patience}) and would discard the average")
        boolean(self.lookahead, "lookahead")
        if self.lookahead and self.patience:
            raise ValueError(f"lookahead=True needs patience=0: early stopping restores the best epoch's raw "
                             f"weights (patience={self.patience}) and would discard the slow copy")
        non_negative_int(self.seed, "seed")

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed (validated again), e.g. ``recipe.replace(epochs=3)``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The recipe as plain JSON-ready values."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


RECIPES: dict[str, Recipe] = {
    # 6 epochs on 49,000 images (1,000 held out to watch the run), residual blocks in stages 2 and 3:
    # 85.4 % test accuracy in 0.97x the training time of the TensorFlow tutorial's CNN (10 epochs at
    # batch 32; benchmarks/capstone.py, and 0.96x timed in turns by benchmarks/speed_ratio.py) on a
    # 2-core AMD EPYC in bfloat16 (1.03x in float32 on an Intel Xeon without bfloat16); how the recipes
    # were chosen: docs/recipes.md
    "quick": Recipe(name="quick", widths=(32, 64, 128), residual=(False, True, True), epochs=6,
                    batch_size=256, learning_rate=0.8, weight_decay=2.5e-3, warmup_epochs=1.0,
                    label_smoothing=0.2, dropout=0.0, translate=2, tta_translate=1, val_fraction=0.02),
    # 69.7 M multiply-adds per image, 10 epochs on 49,000 images: 89.0 % in 3.78x and 3.86x the tutorial's
    # time in two benchmark runs
    "good": Recipe(name="good", widths=(64, 128, 256), residual=(False, True, True), epochs=10,
                   batch_size=256, learning_rate=0.8, weight_decay=2.5e-3, warmup_epochs=1.5,
                   label_smoothing=0.2, dropout=0.0, translate=2, tta_translate=1, val_fraction=0.02),
}
# The good recipe trained twice as long (its schedule stretched to 20 epochs); aim: 93 % within 10x the
# tutorial's time. 16 epochs gave 89.9 % in 6.6x on the AMD EPYC (docs/recipes.md, seventh round). No early
# stopping: on a GPU, patience 4 ended a run at epoch 10 of 20, mid-schedule, at 82.3 % (tenth round).
RECIPES["best"] = RECIPES["good"].replace(name="best", epochs=20, patience=0)


def get_recipe(name_or_recipe) -> Recipe:
    """Return ``RECIPES[name]`` (or the recipe itself); an unknown name lists the known ones."""
    if isinstance(name_or_recipe, Recipe):
        return name_or_recipe
    if name_or_recipe not in RECIPES:
        raise ValueError(f"unknown recipe {name_or_recipe!r}; expected one of {', '.join(RECIPES)}")
    return RECIPES[name_or_recipe]


# Each trick of the good recipe and the recipe fields that take it out (the rest of the recipe unchanged).
ABLATIONS: dict[str, object] = {
    "whitening": lambda r: {"whiten_patch": 0},  # a trainable 3x3 stem convolution instead
    "residual blocks": lambda r: {"residual": (False,) * len(r.widths)},
    "label smoothing": lambda r: {"label_smoothing": 0.0},
    "test-time augmentation": lambda r: {"tta": False, "tta_translate": 0},
    "warm-up": lambda r: {"warmup_epochs": 0.0},
    "weight decay": lambda r: {"weight_decay": 0.0},
    "bfloat16": lambda r: {"precision": "float32"},
}


def ablations(recipe="good", tricks=None) -> dict[str, tuple[Recipe, dict]]:
    """``{"full": (recipe, {}), "no <trick>": (recipe without it, the fields changed), ...}``.

    One entry per trick of :data:`ABLATIONS` (or of ``tricks``, a subset of its names), in
    that order; each variant is ``dataclasses.replace(recipe, **changes)``, validated
    like any recipe and named ``"<recipe>_no_<trick>"``.
    """
    recipe = get_recipe(recipe)
    chosen = list(ABLATIONS) if tricks is None else list(tricks)
    unknown = [t for t in chosen if t not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown tricks {unknown!r}; expected names from {', '.join(ABLATIONS)}")
    variants = {"full": (recipe, {})}
    for trick in chosen:
        changes = ABLATIONS[trick](recipe)
        name = f"{recipe.name}_no_{trick.replace(' ', '_').replace('-', '_')}"
        variants[f"no {trick}"] = (dataclasses.replace(recipe, name=name, **changes), changes)
    return variants
