"""Keras layers that imitate the corruptions a hidden test set carries, where Keras has none.

Every layer works on float32 batches (n, H, W, C) of pixels in 0..255, runs in
a tf.data map or a model, draws its own strength per image, passes images
through unchanged when `training=False`, and has `get_config`. They never ship
in a submission: augmentation lives in the training input pipeline.
"""

from codapack.data.corruption_layers.blur import RandomDefocusBlur, RandomMotionBlur
from codapack.data.corruption_layers.colour import ChannelShuffle, RandomChannelGain
from codapack.data.corruption_layers.compression import RandomJPEG, RandomPixelation
from codapack.data.corruption_layers.mixing import RandomAmplitudeSwap
from codapack.data.corruption_layers.noise import RandomPixelNoise, RandomSaltPepper, RandomSpeckleNoise
from codapack.data.corruption_layers.occlusion import RandomBlobs
from codapack.data.corruption_layers.selection import RandomOneOf
from codapack.data.corruption_layers.texture import RandomConvolution

__all__ = ["ChannelShuffle", "RandomAmplitudeSwap", "RandomBlobs", "RandomChannelGain", "RandomConvolution",
           "RandomDefocusBlur", "RandomJPEG", "RandomMotionBlur", "RandomOneOf", "RandomPixelNoise", "RandomPixelation",
           "RandomSaltPepper", "RandomSpeckleNoise"]
