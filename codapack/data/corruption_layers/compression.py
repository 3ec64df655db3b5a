"""JPEG artefacts and pixelation: what re-encoding and low-resolution capture do to an image."""

import keras
import tensorflow as tf

from codapack.data.corruption_layers.base import CorruptionLayer, batch_size, check_range


@keras.saving.register_keras_serializable(package="codapack")
class RandomJPEG(CorruptionLayer):
    """Encode and decode each image as JPEG at a quality drawn per image.

    Keras has no JPEG layer; `tf.image.adjust_jpeg_quality` takes one image at a
    time, hence the map over the batch.

    Args:
        min_quality, max_quality: the quality range (1..100). Defaults to 10 and 90.
        seed: integer seed. Defaults to None.
    """

    def __init__(self, min_quality=10, max_quality=90, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.min_quality = int(check_range("min_quality", min_quality, 1, 100))
        self.max_quality = int(check_range("max_quality", max_quality, self.min_quality, 100))

    def corrupt(self, images):
        quality = self.uniform((batch_size(images),), self.min_quality, self.max_quality + 1, draw=0,
                               dtype=tf.int32)
        pixels = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.uint8)
        out = tf.map_fn(lambda pair: tf.image.adjust_jpeg_quality(pair[0], pair[1]), (pixels, quality),
                        fn_output_signature=tf.TensorSpec(images.shape[1:], tf.uint8))
        return tf.cast(out, tf.float32)

    def get_config(self):
        return {**super().get_config(), "min_quality": self.min_quality, "max_quality": self.max_quality}


@keras.saving.register_keras_serializable(package="codapack")
class RandomPixelation(CorruptionLayer):
    """Average blocks of f x f pixels and blow them back up, with f drawn per image in 1..max_factor.

    Args:
        max_factor: the largest block side. Defaults to 4.
        seed: integer seed. Defaults to None.
    """

    def __init__(self, max_factor=4, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_factor = int(check_range("max_factor", max_factor, 1, 32))

    def corrupt(self, images):
        size = tf.shape(images)[1:3]
        versions = [images]
        for factor in range(2, self.max_factor + 1):
            small = tf.image.resize(images, tf.maximum(size // factor, 1), method="area")
            versions.append(tf.image.resize(small, size, method="nearest"))
        pick = self.uniform((batch_size(images),), 0, len(versions), draw=0, dtype=tf.int32)
        return tf.gather(tf.stack(versions, axis=1), pick, batch_dims=1)

    def get_config(self):
        return {**super().get_config(), "max_factor": self.max_factor}
