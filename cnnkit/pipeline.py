"""The kit's one tf.data input pipeline: uint8 images gathered per batch, augmented, then normalised.

A 50,000-image CIFAR-10 training set is 150 MB as uint8 but 600 MB as float32.
:func:`batches` keeps the caller's uint8 array where it is (no copy into
TensorFlow: each batch is gathered from it with numpy indexing), augments the
uint8 batch (:func:`random_flip`, :func:`random_translate`), and only then casts
it to float32 and normalises it. The lessons call it through :func:`make_dataset`
(``cnnkit.experiments.train``), the capstone through
``cnnkit.training.make_pipeline``.

``preprocess`` names what happens to a float32 batch ``x`` of shape (B, H, W, C):

* ``"raw"``   -- x unchanged (0..255);
* ``"scale"`` -- x / 255 (0..1);
* a callable  -- ``preprocess(x)``, e.g. ``StandardScaler(...).batch_fn()``
  from ``cnnkit.normalization`` with statistics of the training split.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import boolean, non_negative_int, positive_int
from cnnkit.env import import_tensorflow

tf = import_tensorflow()  # quiet: TensorFlow's C++ start-up banner hidden

PREPROCESS = ("raw", "scale")

__all__ = ["PREPROCESS", "random_flip", "alternating_flip", "random_translate", "random_crop", "batches",
           "make_dataset"]


def _preprocess_fn(preprocess):
    if callable(preprocess):
        return preprocess
    if preprocess == "raw":
        return lambda x: x
    if preprocess == "scale":
        return lambda x: x / 255.0
    raise ValueError(f"preprocess must be 'raw', 'scale' or a callable, got {preprocess!r}")


def _mirror_where(images, mask):
    """Images (B, H, W, C) with those where ``mask`` (B,) bool is True mirrored left-right."""
    return tf.where(mask[:, None, None, None], tf.reverse(images, axis=[2]), images)


def random_flip(images, seed):
    """Mirror each image of a batch (B, H, W, C) left-right with probability 1/2 (stateless ``seed``, shape (2,))."""
    return _mirror_where(images, tf.random.stateless_uniform([tf.shape(images)[0]], seed=seed) < 0.5)


def alternating_flip(images, first_flips, epoch):
    """Mirror image i of a batch (B, H, W, C) when ``first_flips[i] XOR (epoch mod 2)``.

    ``first_flips`` (B,) bool: each image's coin, drawn once for the whole run, decides its
    first epoch; after that every image is mirrored in every other epoch. Over two
    epochs each image is seen once each way, where independent coins leave a quarter of
    the images unmirrored twice (airbench's alternating flips).
    """
    return _mirror_where(images, tf.math.logical_xor(first_flips, tf.cast(epoch % 2, tf.bool)))


def random_translate(images, pad: int, seed):
    """Shift each image of a batch (B, H, W, C) by up to ``pad`` pixels in each direction.

    Each image is reflection-padded by ``pad`` and an (H, W) window is cut at a random
    offset (dy, dx) in 0..2*pad, independently per image, with two batched gathers
    (no per-image Python loop). Works on any dtype, so the batch can stay uint8.
    """
    if pad == 0:
        return images
    shape = tf.shape(images)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    offsets = tf.random.stateless_uniform([shape[0], 2], seed=seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(shape[1])[None, :]
    cols = offsets[:, 1:] + tf.range(shape[2])[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def random_crop(images, size: int, seed):
    """A random ``size`` x ``size`` window of each image of a batch (B, H, W, C): (B, size, size, C).

    Each image gets its own offset (dy, dx), uniform in 0..H-size and 0..W-size (stateless
    ``seed``, shape (2,)); nothing is padded, so every pixel of a crop is a pixel of its image
    at its own scale. Works on any dtype, so the batch can stay uint8.
    """
    shape = tf.shape(images)
    high = tf.stack([shape[1], shape[2]]) - size + 1
    offsets = tf.cast(tf.random.stateless_uniform([shape[0], 2], seed=seed) * tf.cast(high, tf.float32), tf.int32)
    offsets = tf.minimum(offsets, high - 1)
    rows = offsets[:, :1] + tf.range(size)[None, :]
    cols = offsets[:, 1:] + tf.range(size)[None, :]
    out = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def batches(x, labels, *, batch_size: int, preprocess, shuffle: bool = False, seed: int = 0,
            flip: bool = False, translate: int = 0, drop_remainder: bool = False, repeat: bool = False,
            one_hot: int | None = None, alternate: bool = False, crop: int = 0, crop_batches: int = 0):
    """A ``tf.data.Dataset`` of ``(preprocess(float32 images (B, H, W, C)), labels (B,))``.

    ``x`` (N, H, W, C) and ``labels`` (N,) integer arrays, already validated by the caller.
    Per batch: indices (shuffled anew every epoch when ``shuffle``) -> gather the images from
    ``x`` itself (a numpy callback, so the array is never copied into TensorFlow) -> random
    flips and translations by up to ``translate`` pixels (seeded from ``seed`` and the batch's
    position in the stream) -> cast to float32 -> ``preprocess``. Labels come out int32, or
    one-hot float32 (B, one_hot) when ``one_hot`` is a class count. ``repeat``: an endless stream,
    epoch after epoch, each reshuffled and augmented anew (give ``model.fit`` its
    ``steps_per_epoch``; one iterator then serves the whole run). ``alternate`` (with ``flip``
    and ``repeat``): :func:`alternating_flip` instead of independent coins, each image's first
    coin drawn from ``seed``; the epoch is counted from the batch's position in the stream.
    ``crop`` c > 0 with ``crop_batches`` n > 0: the first n batches of the stream are
    :func:`random_crop` windows of c x c pixels (after the flip, in place of the shift), the
    rest full-size images as above; the batches' shape then leaves H and W open.
    """
    fn = _preprocess_fn(preprocess)
    label_tensor = tf.constant(np.asarray(labels).astype(np.int32))
    n = x.shape[0]
    indices = tf.data.Dataset.range(n)
    if shuffle:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    indices = indices.batch(batch_size, drop_remainder=drop_remainder)
    if alternate and not (flip and repeat):
        raise ValueError(f"alternate=True mirrors each image every other epoch: it needs flip=True and repeat=True "
                         f"(one stream that counts its epochs), got flip={flip!r}, repeat={repeat!r}")
    if bool(crop) != bool(crop_batches):
        raise ValueError(f"crop and crop_batches go together (a crop size and how many batches it lasts), got "
                         f"crop={crop!r}, crop_batches={crop_batches!r}")
    if crop and not crop < min(x.shape[1:3]):
        raise ValueError(f"crop={crop} must be smaller than the images ({x.shape[1]}x{x.shape[2]})")
    per_epoch = n // batch_size if drop_remainder else -(-n // batch_size)
    if repeat:
        indices = indices.repeat()
    augment = bool(flip or translate or crop)
    if augment:
        stream = tf.data.Dataset.zip((indices, tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True),
                                      tf.data.Dataset.range(2**62)))
    else:
        stream = indices.map(lambda idx: (idx, tf.constant(0, tf.int64), tf.constant(0, tf.int64)))
    first_flips = tf.constant(np.random.default_rng(seed).random(n) < 0.5) if alternate else None
    dtype = tf.as_dtype(x.dtype)

    def gather(idx):  # numpy fancy indexing on the caller's array: no second copy of the images
        return x[idx]

    def load(idx, r, position):
        # a numpy callback, not tf.gather on a tensor: a tensor of the images captured by the
        # pipeline cost two extra copies of them (measured: +310 MB for 45,000 CIFAR images)
        batch = tf.numpy_function(gather, [idx], dtype, stateful=False)
        batch.set_shape((None, *x.shape[1:]))
        if augment:
            key = tf.stack([r, tf.constant(seed, tf.int64)])
            if alternate:
                batch = alternating_flip(batch, tf.gather(first_flips, idx), position // max(per_epoch, 1))
            elif flip:
                batch = random_flip(batch, key)
            flipped = batch

            def shifted():
                return random_translate(flipped, int(translate), key + 1) if translate else flipped

            if crop:  # a crop in the first crop_batches batches, the full (shifted) image after them
                batch = tf.cond(position < crop_batches, lambda: random_crop(flipped, int(crop), key + 2), shifted)
                batch.set_shape((None, None, None, x.shape[-1]))
            else:
                batch = shifted()
        target = tf.gather(label_tensor, idx)
        if one_hot:
            target = tf.one_hot(target, one_hot)
        return fn(tf.cast(batch, tf.float32)), target

    return stream.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_dataset(x, y, batch_size: int = 128, *, shuffle: bool = False, seed: int = 0,
                 augment: bool = False, preprocess="scale", drop_remainder: bool = False):
    """The lessons' pipeline: ``(float32 images (B, H, W, C), int32 labels (B,))`` batches of ``x``, ``y``.

    ``x`` stays as it is in memory (uint8 0..255, or any numeric dtype); each batch is
    gathered, augmented when ``augment`` (training only: a random left-right flip and a
    shift by up to 4 pixels with reflection padding, per image), cast to float32 and passed
    through ``preprocess``. ``shuffle`` reshuffles every epoch from ``seed``.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise TypeError(f"x must be a numeric image array (uint8 0..255 or float), got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"x must have rank 4 (N, H, W, C), got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {y.shape}")
    batch_size = positive_int(batch_size, "batch_size")
    seed = non_negative_int(seed, "seed")
    shuffle, augment, drop_remainder = (boolean(v, n) for v, n in (
        (shuffle, "shuffle"), (augment, "augment"), (drop_remainder, "drop_remainder")))
    if augment and min(x.shape[1:3]) <= 4:
        raise ValueError(f"augment shifts images by up to 4 pixels with reflection padding, which needs images "
                         f"larger than 4x4, got {x.shape[1]}x{x.shape[2]}")
    _preprocess_fn(preprocess)  # a bad name is refused now, not when the first batch is drawn
    if x.dtype == bool:
        x = x.astype(np.uint8)
    return batches(x, y, batch_size=int(batch_size), preprocess=preprocess, shuffle=shuffle, seed=int(seed),
                   flip=augment, translate=4 if augment else 0, drop_remainder=drop_remainder)
