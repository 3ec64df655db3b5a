"""The training pipelines: every image once per epoch, its own label, float32 pixels, reshuffled."""

import numpy as np

from codapack.trainer import inputs
from codapack.trainer.config import Augmentation


def _images(n):
    # Each image is filled with its own index, so a batch says which images it holds.
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 4, 4, 3)).copy()


def _epoch(ds):
    pixels, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(pixels), np.concatenate(labels)


def test_train_pipeline_gives_each_image_once_per_epoch_with_its_label_reshuffled():
    n, classes = 50, 5
    images, labels = _images(n), np.arange(n) % classes
    ds = inputs.train_pipeline(images, labels, classes, 16, Augmentation(), seed=3)
    first, first_labels = _epoch(ds)
    second, _ = _epoch(ds)
    assert first.dtype == np.float32 and first.shape == (n, 4, 4, 3)
    order = first[:, 0, 0, 0].astype(int)
    assert sorted(order) == list(range(n)) and order.tolist() != list(range(n))
    assert (first == first[:, :1, :1, :1]).all()  # whole images, not mixed pixels
    np.testing.assert_array_equal(first_labels, np.eye(classes)[order % classes])
    assert second[:, 0, 0, 0].astype(int).tolist() != order.tolist()  # a new order each epoch
    again, _ = _epoch(inputs.train_pipeline(images, labels, classes, 16, Augmentation(), seed=3))
    np.testing.assert_array_equal(again, first)  # the seed fixes the sequence
    assert [len(x) for x, _ in ds] == [16, 16, 16, 2]


def test_eval_and_array_pipelines_keep_the_order():
    n, classes = 21, 3
    images, labels = _images(n), np.arange(n) % classes
    pixels, one_hot = _epoch(inputs.eval_pipeline(images, labels, classes, 8))
    np.testing.assert_array_equal(pixels, images.astype(np.float32))
    np.testing.assert_array_equal(one_hot, np.eye(classes)[labels])
    features = np.random.default_rng(0).normal(size=(n, 6)).astype(np.float32)
    ordered, ordered_labels = _epoch(inputs.array_pipeline(features, labels, classes, 8))
    np.testing.assert_array_equal(ordered, features)
    np.testing.assert_array_equal(ordered_labels, np.eye(classes)[labels])
    shuffled, shuffled_labels = _epoch(inputs.array_pipeline(features, labels, classes, 8, shuffle=True, seed=1))
    rows = [int(np.flatnonzero((features == row).all(axis=1))[0]) for row in shuffled]
    assert sorted(rows) == list(range(n)) and rows != list(range(n))
    np.testing.assert_array_equal(shuffled_labels, np.eye(classes)[labels[rows]])
