"""The training inputs: subsampling, imbalance handling and the tf.data pipelines."""

import numpy as np
from sklearn.model_selection import train_test_split

from codapack.data.augment import batch_mixer, image_augmenter
from codapack.data.policies import LAYER_FAMILIES, layer_names


def subsample(indices, labels, limit, seed):
    """A stratified subset of `indices` of size `limit` (all of them when limit is 0 or larger)."""
    if not limit or limit >= len(indices):
        return indices
    kept, _ = train_test_split(indices, train_size=limit, random_state=seed, stratify=labels[indices])
    return np.sort(kept)


def balanced_class_weights(labels, num_classes):
    """Inverse-frequency weights {class: n / (k * count)}, as scikit-learn's "balanced"."""
    counts = np.bincount(labels, minlength=num_classes)
    return {c: float(len(labels) / (num_classes * counts[c])) if counts[c] else 0.0 for c in range(num_classes)}


def oversample(images, labels, seed):
    """Repeat images of the smaller classes (drawn at random) until every class is as large as the largest."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    extra = [rng.choice(np.flatnonzero(labels == c), counts.max() - n) for c, n in enumerate(counts) if n]
    order = np.concatenate([np.arange(len(labels)), *extra])
    return images[order], labels[order]


def train_pipeline(images, labels, num_classes, batch_size, augmentation, seed, pairs=False):
    """Shuffled batches of (float32 pixels 0..255, one-hot or soft labels), augmented per epoch.

    With `pairs`, each batch of B images is 2B rows for `consistency.ConsistencyLoss`:
    the images with the geometry layers only, then the same images with the other
    layers applied on top of that geometry.
    """
    import tensorflow as tf

    names = layer_names(augmentation)
    order = tf.data.Dataset.range(len(labels)).shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = _gathered(images, labels, order.batch(batch_size), num_classes)
    if pairs:
        geometry = [name for name in names if LAYER_FAMILIES[name] == ("geometry",)]
        rest = [name for name in names if name not in geometry]
        move, corrupt = image_augmenter(geometry, seed), image_augmenter(rest, seed + len(geometry))
        move, corrupt = move or (lambda x: x), corrupt or (lambda x: x)
        ds = ds.map(lambda x, y: _paired(move(x), corrupt, y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)
    augment = image_augmenter(names, seed)
    mix = batch_mixer(augmentation.mixup, augmentation.cutmix, seed)  # refused with pairs (config check)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    if mix is not None:
        ds = ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_pipeline(images, labels, num_classes, batch_size, pairs=False):
    """Batches of (float32 pixels, one-hot labels) in order, for validation and prediction.

    With `pairs`, each image is paired with itself (see `train_pipeline`): the
    validation loss of a consistency phase is then its plain cross-entropy.
    """
    import tensorflow as tf

    ds = _gathered(images, labels, tf.data.Dataset.range(len(labels)).batch(batch_size), num_classes)
    if pairs:
        ds = ds.map(lambda x, y: _paired(x, lambda same: same, y))
    return ds.prefetch(tf.data.AUTOTUNE)


def _paired(images, corrupt, labels):
    import tensorflow as tf

    return tf.concat([images, corrupt(images)], axis=0), tf.concat([labels, labels], axis=0)


def _gathered(images, labels, batch_indices, num_classes):
    """Whole batches gathered by index from the arrays held once, cast to float32 there.

    Shuffling and batching single images (`from_tensor_slices(...).shuffle(n).batch(b)`)
    copies every image through a shuffle buffer and again into its batch, one element at a
    time: on 2 cores that made the pipeline slower than `fit` on numpy. Shuffling indices and
    gathering each batch at once is what Keras does with arrays; the uint8 images stay uint8
    until the batch is gathered (4x less memory than float32 arrays).
    """
    import tensorflow as tf

    arrays = tf.data.Dataset.from_tensors((images, labels)).repeat()

    def batch(indices, data):
        x, y = tf.gather(data[0], indices), tf.gather(data[1], indices)
        return tf.cast(x, tf.float32), tf.one_hot(y, num_classes)

    return tf.data.Dataset.zip((batch_indices, arrays)).map(batch, num_parallel_calls=tf.data.AUTOTUNE)


def array_pipeline(features, labels, num_classes, batch_size, *, shuffle=False, seed=0):
    """Batches of precomputed features with one-hot labels (the cached-feature head training)."""
    import tensorflow as tf

    order = tf.data.Dataset.range(len(labels))
    if shuffle:
        order = order.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    features_and_labels = tf.data.Dataset.from_tensors((features, tf.one_hot(labels, num_classes))).repeat()
    ds = tf.data.Dataset.zip((order.batch(batch_size), features_and_labels))
    return ds.map(lambda indices, data: (tf.gather(data[0], indices), tf.gather(data[1], indices)),
                  num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
