"""tf.data input pipelines that keep images as uint8 and normalise per batch.

A 50,000-image CIFAR-10 training set is 150 MB as uint8 but 600 MB as float32;
the pipelines here keep the uint8 array, then cast, augment and normalise one
batch at a time, so a lesson stays within Binder's 2 GB.

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


def _preprocess_fn(preprocess):
    if callable(preprocess):
        return preprocess
    if preprocess == "raw":
        return lambda x: x
    if preprocess == "scale":
        return lambda x: x / 255.0
    raise ValueError(f"preprocess must be 'raw', 'scale' or a callable, got {preprocess!r}")


def augment_image(image, seed, pad: int = 4):
    """Flip a (H, W, C) image left-right with probability 1/2 and shift it by up to ``pad`` pixels.

    The shift is a random (H, W) crop of the image reflection-padded by ``pad``
    on every side. ``seed`` is a stateless seed, shape (2,) int: the same seed
    gives the same augmentation.
    """
    shape = tf.shape(image)
    flipped = tf.image.stateless_random_flip_left_right(image, seed=seed)
    padded = tf.pad(flipped, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    return tf.image.stateless_random_crop(padded, size=shape, seed=seed + 1)


def make_dataset(x, y, batch_size: int = 128, *, shuffle: bool = False, seed: int = 0,
                 augment: bool = False, preprocess="scale", drop_remainder: bool = False):
    """Return a ``tf.data.Dataset`` of ``(float32 images (B, H, W, C), int32 labels (B,))``.

    ``x`` stays uint8 in memory (it is never converted to float as a whole); each
    image is augmented when ``augment`` (training only: :func:`augment_image`),
    then each batch is cast to float32 and passed through ``preprocess``.
    ``shuffle`` reshuffles every epoch from ``seed``.
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
    fn = _preprocess_fn(preprocess)
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if augment:
        # the i-th image drawn in an epoch gets the stateless seed (seed, i); shuffling
        # changes which image that is, so each epoch sees new augmentations
        counter = tf.data.Dataset.counter()
        ds = tf.data.Dataset.zip((ds, counter)).map(
            lambda pair, i: (augment_image(pair[0], tf.stack([tf.cast(seed, tf.int64), i])), pair[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    ds = ds.map(lambda images, labels: (fn(tf.cast(images, tf.float32)), labels),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
