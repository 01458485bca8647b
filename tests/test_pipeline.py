"""cnnkit.pipeline: uint8 images, per-batch normalisation and seeded augmentation in tf.data."""
import numpy as np
import pytest
import tensorflow as tf  # noqa: F401  (the pipelines are tf.data: required, never skipped)

from cnnkit import pipeline


def test_pipeline_keeps_uint8_and_normalises_per_batch():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    y = np.arange(10)
    batches = list(pipeline.make_dataset(x, y, 4, preprocess="scale"))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    np.testing.assert_allclose(np.concatenate([b[0].numpy() for b in batches]), x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)
    assert batches[0][1].dtype == tf.int32 and batches[0][0].dtype == tf.float32
    raw = next(iter(pipeline.make_dataset(x, y, 10, preprocess="raw")))[0].numpy()
    np.testing.assert_array_equal(raw, x.astype(np.float32))
    custom = next(iter(pipeline.make_dataset(x, y, 10, preprocess=lambda b: b - 100.0)))[0].numpy()
    np.testing.assert_allclose(custom, x - 100.0)
    dropped = list(pipeline.make_dataset(x, y, 4, drop_remainder=True))
    assert [b[0].shape[0] for b in dropped] == [4, 4]


def test_shuffle_keeps_image_and_label_together_and_changes_each_epoch():
    x = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1)
    y = np.arange(20)
    ds = pipeline.make_dataset(x, y, 5, shuffle=True, seed=3, preprocess="raw")
    epochs = []
    for _ in range(2):
        batches = [(b[0].numpy().ravel(), b[1].numpy()) for b in ds]  # one pass = one epoch
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        np.testing.assert_array_equal(images, labels)  # each label stays with its image
        assert sorted(images.tolist()) == list(range(20))
        epochs.append(images)
    assert not np.array_equal(epochs[0], epochs[1])


def test_pipeline_augmentation_is_seeded_flip_or_shift():
    x = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
    y = np.zeros(2, dtype=int)
    a = next(iter(pipeline.make_dataset(x, y, 2, augment=True, seed=1, preprocess="raw")))[0].numpy()
    b = next(iter(pipeline.make_dataset(x, y, 2, augment=True, seed=1, preprocess="raw")))[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape
    # every augmented value comes from the same image (a flip and a shift move pixels, never invent them)
    for i in range(2):
        assert set(a[i].ravel()) <= set(x[i].astype(np.float32).ravel())
    c = next(iter(pipeline.make_dataset(x, y, 2, augment=True, seed=2, preprocess="raw")))[0].numpy()
    assert not np.array_equal(a, c)  # another seed, other flips and shifts


def test_alternating_flips_mirror_each_image_every_other_epoch():
    # 10 distinct asymmetric images, batches of 4 (2 per epoch with drop_remainder), three epochs
    x = np.stack([np.arange(4 * 4 * 1, dtype=np.uint8).reshape(4, 4, 1) + 16 * i for i in range(10)])
    y = np.arange(10)
    stream = pipeline.batches(x, y, batch_size=4, preprocess="raw", shuffle=True, seed=3, flip=True,
                              drop_remainder=True, repeat=True, alternate=True)
    mirrored = {}  # image -> [was it mirrored in epoch 0, 1, 2]
    for step, (images, labels) in enumerate(stream.take(6)):
        for image, label in zip(images.numpy(), labels.numpy()):
            original = x[label].astype(np.float32)
            assert np.array_equal(image, original) or np.array_equal(image, original[:, ::-1])
            mirrored.setdefault(int(label), {})[step // 2] = bool(np.array_equal(image, original[:, ::-1]))
    seen_thrice = [flips for flips in mirrored.values() if len(flips) == 3]
    assert seen_thrice  # 8 of 10 images per epoch: some images are drawn in all three epochs
    for flips in mirrored.values():
        for epoch in flips:
            if epoch + 1 in flips:
                assert flips[epoch] != flips[epoch + 1]  # the other way round in the next epoch
    first = [flips[0] for flips in mirrored.values() if 0 in flips]
    assert 0 < sum(first) < len(first)  # the first epoch's coins differ between images
    with pytest.raises(ValueError, match="alternate=True .* needs flip=True and repeat=True"):
        pipeline.batches(x, y, batch_size=4, preprocess="raw", flip=True, alternate=True)


def test_random_crops_are_windows_of_their_images_for_the_first_batches_only():
    x = np.arange(6 * 8 * 8 * 1, dtype=np.uint8).reshape(6, 8, 8, 1)  # every pixel value distinct
    y = np.arange(6)
    stream = pipeline.batches(x, y, batch_size=3, preprocess="raw", shuffle=True, seed=4, flip=True, translate=1,
                              drop_remainder=True, repeat=True, crop=5, crop_batches=3)
    offsets = set()
    for step, (images, labels) in enumerate(stream.take(5)):
        images = images.numpy()
        assert images.shape == ((3, 5, 5, 1) if step < 3 else (3, 8, 8, 1))
        if step >= 3:
            continue
        for image, label in zip(images, labels.numpy()):
            windows = {(dy, dx, mirrored): (x[label, ::1, ::-1] if mirrored else x[label])[dy:dy + 5, dx:dx + 5]
                       for dy in range(4) for dx in range(4) for mirrored in (False, True)}
            found = [key for key, window in windows.items() if np.array_equal(image, window)]
            assert len(found) == 1  # one window of the image (or of its mirror image), at its own scale
            offsets.add(found[0][:2])
    assert len(offsets) > 3  # the offsets vary from image to image
    def first_batches(seed):
        return [b[0].numpy() for b in pipeline.batches(x, y, batch_size=3, preprocess="raw", shuffle=True, seed=seed,
                                                       flip=True, drop_remainder=True, repeat=True, crop=5,
                                                       crop_batches=3).take(3)]

    for got, want in zip(first_batches(4), first_batches(4)):
        np.testing.assert_array_equal(got, want)  # seeded
    assert any(not np.array_equal(a, b) for a, b in zip(first_batches(4), first_batches(5)))
    with pytest.raises(ValueError, match=r"crop and crop_batches go together .* crop=5, crop_batches=0"):
        pipeline.batches(x, y, batch_size=3, preprocess="raw", crop=5)
    with pytest.raises(ValueError, match=r"crop=8 must be smaller than the images \(8x8\)"):
        pipeline.batches(x, y, batch_size=3, preprocess="raw", crop=8, crop_batches=1)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"x": np.zeros((4, 8, 8)), "y": np.zeros(4)}, ValueError, "x must have rank 4"),
    ({"x": np.zeros((4, 8, 8, 3)), "y": np.zeros(3)}, ValueError, r"y must have shape \(4,\)"),
    ({"batch_size": 0}, ValueError, r"batch_size must be a positive integer \(>= 1\), got 0"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be a positive integer, got 2.5"),
    ({"preprocess": "zscore"}, ValueError, "preprocess must be"),
    ({"seed": -1}, ValueError, r"seed must be a non-negative integer \(>= 0\), got -1"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be True or False, got 'yes'"),
    ({"x": np.full((4, 8, 8, 3), "a")}, TypeError, "x must be a numeric image array"),
    ({"x": np.zeros((4, 4, 4, 3)), "augment": True}, ValueError, "larger than 4x4, got 4x4"),
])
def test_pipeline_rejects_bad_arguments(kwargs, error, message):
    args = {"x": np.zeros((4, 8, 8, 3), np.uint8), "y": np.zeros(4, int), **kwargs}
    with pytest.raises(error, match=message):
        pipeline.make_dataset(**args)
