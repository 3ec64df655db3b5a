"""The training inputs: subsampling, imbalance handling and the tf.data pipelines."""

import numpy as np
from sklearn.model_selection import train_test_split

from trainer.augment import batch_mixer, image_augmenter, layer_names


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


def train_pipeline(images, labels, num_classes, batch_size, augmentation, seed):
    """Shuffled batches of (float32 pixels 0..255, one-hot or soft labels), augmented per epoch."""
    import tensorflow as tf

    augment = image_augmenter(layer_names(augmentation), seed)
    mix = batch_mixer(augmentation.mixup, augmentation.cutmix, seed)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    if mix is not None:
        ds = ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_pipeline(images, labels, num_classes, batch_size):
    """Batches of (float32 pixels, one-hot labels) in order, for validation and prediction."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def array_pipeline(features, labels, num_classes, batch_size, *, shuffle=False, seed=0):
    """Batches of precomputed features with one-hot labels (the cached-feature head training)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((features, tf.one_hot(labels, num_classes)))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
