"""codapack's corruption layers: NumPy references, statistics that move the right way, seeds, configs."""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import ndimage

from codapack.data.corruption_layers import (RandomAmplitudeSwap, RandomBlobs, RandomChannelGain, RandomConvolution,
                                             RandomDefocusBlur, RandomJPEG, RandomMotionBlur, RandomOneOf,
                                             RandomPixelation, RandomPixelNoise, RandomSaltPepper, RandomSpeckleNoise)
from codapack.data.corruption_layers.blur import per_image_convolution

RNG = np.random.default_rng(0)
# Textured images away from 0 and 255, so that clipping does not hide what a layer did.
IMAGES = RNG.uniform(40, 215, (12, 24, 24, 3)).astype(np.float32)
FACTORIES = {
    "channel_gain": lambda seed: RandomChannelGain(seed=seed),
    "defocus": lambda seed: RandomDefocusBlur(seed=seed),
    "motion": lambda seed: RandomMotionBlur(seed=seed),
    "pixel_noise": lambda seed: RandomPixelNoise(seed=seed),
    "speckle": lambda seed: RandomSpeckleNoise(seed=seed),
    "salt_pepper": lambda seed: RandomSaltPepper(seed=seed),
    "jpeg": lambda seed: RandomJPEG(seed=seed),
    "pixelation": lambda seed: RandomPixelation(seed=seed),
    "blobs": lambda seed: RandomBlobs(seed=seed),
    "amplitude_swap": lambda seed: RandomAmplitudeSwap(seed=seed),
    "random_convolution": lambda seed: RandomConvolution(rate=0.8, seed=seed),
    "one_of": lambda seed: RandomOneOf([RandomPixelNoise(seed=seed), RandomDefocusBlur(seed=seed)], rate=0.7,
                                       seed=seed),
}


def _run(layer, images=IMAGES, graph_seed=0):
    tf.random.set_seed(graph_seed)
    return layer(tf.constant(images), training=True).numpy()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_keeps_shape_dtype_and_range_changes_only_in_training_and_is_seeded(name):
    layer = FACTORIES[name](7)
    out = _run(layer)
    assert out.shape == IMAGES.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    assert np.abs(out - IMAGES).mean() > 0.1
    assert np.array_equal(layer(tf.constant(IMAGES), training=False).numpy(), IMAGES)
    assert np.array_equal(out, _run(FACTORIES[name](7)))  # same seed, same result
    assert not np.array_equal(out, _run(FACTORIES[name](8)))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_config_round_trips(name):
    layer = FACTORIES[name](5)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_per_image_convolution_matches_scipy_per_image():
    kernels = RNG.uniform(0, 1, (len(IMAGES), 5, 5)).astype(np.float32)
    out = per_image_convolution(tf.constant(IMAGES), tf.constant(kernels)).numpy()
    for i, kernel in enumerate(kernels):
        # TF convolutions correlate and pad by mirroring without the edge: SciPy's correlate, mode "mirror".
        expected = ndimage.correlate(IMAGES[i].astype(np.float64), kernel[:, :, None], mode="mirror")
        np.testing.assert_allclose(out[i], expected, rtol=1e-4, atol=1e-2)


def test_defocus_kernel_is_the_anti_aliased_disk():
    layer = RandomDefocusBlur(max_radius=3.0)
    kernel = layer.kernels(tf.constant([2.0])).numpy()[0]
    yy, xx = np.mgrid[-3:4, -3:4]
    disk = np.clip(2.5 - np.hypot(yy, xx), 0, 1)
    np.testing.assert_allclose(kernel, disk / disk.sum(), atol=1e-6)


def test_motion_kernel_is_a_line_along_its_angle():
    kernel = RandomMotionBlur(max_length=9.0).kernels(tf.constant([7.0]), tf.constant([0.0])).numpy()[0]
    assert kernel.shape == (9, 9) and kernel.sum() == pytest.approx(1.0)
    assert np.allclose(kernel[4, 1:8], 1 / 7) and kernel[[0, 1, 2, 3, 5, 6, 7, 8]].sum() == 0


@pytest.mark.parametrize("name", ["defocus", "motion", "pixelation"])
def test_blur_and_pixelation_remove_fine_detail(name):
    out = _run(FACTORIES[name](1))
    detail = lambda x: np.abs(np.diff(x, axis=2)).mean()  # noqa: E731
    assert detail(out) < 0.8 * detail(IMAGES)


def test_pixelation_by_two_is_the_block_mean():
    out = _run(RandomPixelation(max_factor=2, seed=3))
    blocks = IMAGES.reshape(12, 12, 2, 12, 2, 3).mean(axis=(2, 4)).repeat(2, axis=1).repeat(2, axis=2)
    pixelated = [i for i in range(12) if not np.allclose(out[i], IMAGES[i])]
    assert 0 < len(pixelated) < 12
    np.testing.assert_allclose(out[pixelated], blocks[pixelated], atol=1e-3)


def test_channel_gain_scales_each_channel_by_one_factor_within_bounds():
    images = IMAGES * 0.75  # below 255 / 1.3: no clipping
    ratio = _run(RandomChannelGain(gain=0.3, offset=0.0, seed=2), images) / images
    per_channel = ratio.reshape(12, -1, 3)
    assert np.allclose(per_channel, per_channel[:, :1], atol=1e-4)  # one gain per image and channel
    assert per_channel.min() >= 0.7 - 1e-5 and per_channel.max() <= 1.3 + 1e-5
    assert per_channel[:, 0].std() > 0.05  # channels and images differ


def test_pixel_noise_is_zero_mean_with_a_deviation_drawn_per_image():
    flat = np.full((64, 24, 24, 3), 128.0, np.float32)
    residual = _run(RandomPixelNoise(max_stddev=20.0, seed=4), flat) - 128.0
    stds = residual.reshape(64, -1).std(axis=1)
    assert abs(residual.mean()) < 0.5
    assert stds.max() <= 20.5 and stds.min() < 5 and stds.max() > 15


def test_speckle_grows_with_brightness():
    images = np.concatenate([np.full((16, 24, 24, 3), 40.0), np.full((16, 24, 24, 3), 160.0)]).astype(np.float32)
    residual = _run(RandomSpeckleNoise(max_stddev=0.3, seed=5), images) - images
    dark, bright = residual[:16].std(), residual[16:].std()
    assert bright / dark == pytest.approx(4.0, rel=0.35)


def test_salt_and_pepper_sets_whole_pixels_to_black_or_white():
    out = _run(RandomSaltPepper(max_amount=0.2, seed=6))
    hit = np.any(out != IMAGES, axis=-1)
    assert 0.02 < hit.mean() <= 0.2
    values = out[hit]
    assert np.all((values == 0) | (values == 255)) and np.all(values == values[:, :1])


def test_jpeg_matches_pillow_at_the_same_quality():
    smooth = ndimage.gaussian_filter(IMAGES, sigma=(0, 1.5, 1.5, 0))
    out = _run(RandomJPEG(min_quality=20, max_quality=20, seed=1), smooth)
    expected = []
    for image in np.rint(smooth).astype(np.uint8):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=20)
        expected.append(np.asarray(Image.open(buffer), dtype=np.float32))
    assert np.abs(out - np.stack(expected)).mean() < 1.5
    assert np.abs(out - smooth).mean() > 1.5


def test_blobs_cover_part_of_the_image_with_a_flat_colour():
    out = _run(RandomBlobs(max_count=1, max_radius=0.3, min_opacity=1.0, seed=9))
    changed = np.abs(out - IMAGES).max(axis=-1) > 30
    assert 0.0 < changed.mean() < 0.6
    for i in range(12):
        core = out[i][np.abs(out[i] - IMAGES[i]).max(axis=-1) > 100]
        if len(core) > 4:
            assert core.std(axis=0).max() < 25  # the blob's inside is nearly one colour, over any texture


def _amplitude_swap_reference(images):
    """Each image's phase with the previous image's amplitude, per channel, in NumPy."""
    spectrum = np.fft.fft2(images.astype(np.float64), axes=(1, 2))
    donor = np.abs(np.roll(spectrum, 1, axis=0))
    return np.clip(np.real(np.fft.ifft2(donor * np.exp(1j * np.angle(spectrum)), axes=(1, 2))), 0, 255)


def test_amplitude_swap_matches_numpy_and_takes_the_donors_spectrum():
    out = _run(RandomAmplitudeSwap(rate=1.0, seed=3))
    np.testing.assert_allclose(out, _amplitude_swap_reference(IMAGES), atol=0.05)
    # Smooth images, so that nothing is clipped: the amplitude is the donor's, the phase the image's.
    smooth = ndimage.gaussian_filter(IMAGES, sigma=(0, 2, 2, 0)).astype(np.float32)
    swapped = np.fft.fft2(_run(RandomAmplitudeSwap(rate=1.0, seed=3), smooth).astype(np.float64), axes=(1, 2))
    original = np.fft.fft2(smooth.astype(np.float64), axes=(1, 2))
    np.testing.assert_allclose(np.abs(swapped), np.abs(np.roll(original, 1, axis=0)), rtol=1e-3, atol=0.5)
    strong = np.abs(original) > 50
    assert np.abs(np.angle(swapped[strong] / original[strong])).max() < 1e-2


def test_amplitude_swap_changes_the_requested_share_and_nothing_at_rate_zero():
    images = np.tile(IMAGES, (20, 1, 1, 1))  # each image's donor is another image
    out = _run(RandomAmplitudeSwap(rate=0.3, seed=2), images)
    changed = np.any(np.abs(out - images) > 0.5, axis=(1, 2, 3))
    assert changed.mean() == pytest.approx(0.3, abs=0.08)
    assert np.array_equal(_run(RandomAmplitudeSwap(rate=0.0, seed=2)), IMAGES)


def _blend_residual(out, image, filtered):
    """How far `out` is from the best blend w * image + (1 - w) * filtered, relative to its spread."""
    a, b = (image - filtered).ravel(), (out - filtered).ravel()
    weight = a @ b / (a @ a)
    return np.abs(b - weight * a).max() / image.std(), weight


def test_random_convolution_is_the_image_blended_with_scipys_filtering():
    layer = RandomConvolution(rate=1.0, kernel_sizes=(5,), seed=4)
    kernel = RNG.normal(0, 1, (5, 5, 3, 3)).astype(np.float32) * layer.kernel(3).numpy().astype(bool)
    layer.kernel = lambda channels: tf.constant(kernel)
    faint = 100 + (IMAGES[:4] - 127.5) * 0.2  # little contrast: nothing is clipped
    out = _run(layer, faint)
    for image, result in zip(faint.astype(np.float64), out):
        centred = image - image.mean(axis=(0, 1))
        filtered = np.stack([sum(ndimage.correlate(centred[..., i], kernel[..., i, j], mode="mirror")
                                 for i in range(3)) for j in range(3)], axis=-1)
        filtered = filtered * centred.std() / filtered.std() + image.mean(axis=(0, 1))
        residual, weight = _blend_residual(result, image, filtered)
        assert residual < 0.02 and 0 <= weight <= 1


def test_random_convolution_of_size_one_mixes_colours_pixel_by_pixel_and_keeps_the_means():
    out = _run(RandomConvolution(rate=1.0, kernel_sizes=(1,), seed=2), IMAGES[:4])
    for image, result in zip(IMAGES[:4].reshape(4, -1, 3), out.reshape(4, -1, 3)):
        affine = np.c_[image, np.ones(len(image))]
        fit = np.linalg.lstsq(affine, result, rcond=None)[0]
        assert np.abs(affine @ fit - result).max() < 0.5  # a colour matrix: no pixel sees its neighbours
        np.testing.assert_allclose(result.mean(axis=0), image.mean(axis=0), atol=3.0)
    layer = RandomConvolution(kernel_sizes=(3, 7), seed=1)
    spans = set()
    for _ in range(20):
        support = np.flatnonzero(np.any(layer.kernel(3).numpy() != 0, axis=(1, 2, 3)))
        spans.add((support.min(), support.max()))
    assert spans == {(2, 4), (0, 6)}  # a 3 x 3 kernel in the middle of the 7 x 7 grid, or the whole grid


def test_one_of_changes_the_requested_share_and_uses_only_its_candidates():
    images = np.repeat(IMAGES, 20, axis=0)
    out = _run(RandomOneOf([RandomSaltPepper(max_amount=0.5, seed=1)], rate=0.4, seed=2), images)
    changed = np.any(out != images, axis=(1, 2, 3))
    assert changed.mean() == pytest.approx(0.4, abs=0.08)
    values = out[out != images]
    assert np.all((values == 0) | (values == 255))
    assert np.array_equal(_run(RandomOneOf([RandomSaltPepper(seed=1)], rate=0.0, seed=2)), IMAGES)


@pytest.mark.parametrize("kwargs, message", [
    (dict(gain=1.5), "`gain` should be in \\[0.0, 1.0\\]. Received: gain=1.5"),
    (dict(offset=-1), "`offset` should be in"),
])
def test_bad_arguments_are_refused_the_keras_way(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomChannelGain(**kwargs)


def test_random_convolution_refuses_even_kernel_sizes():
    message = "`kernel_sizes` should be odd sizes of at least 1. Received: kernel_sizes=\\(1, 4\\)"
    with pytest.raises(ValueError, match=message):
        RandomConvolution(kernel_sizes=(1, 4))


def test_layers_run_inside_a_tf_data_map():
    layer = RandomOneOf([RandomJPEG(seed=1), RandomMotionBlur(seed=2)], rate=1.0, seed=3)
    ds = tf.data.Dataset.from_tensor_slices(IMAGES).batch(4).map(lambda x: layer(x, training=True))
    out = np.concatenate(list(ds.as_numpy_iterator()))
    assert out.shape == IMAGES.shape and np.abs(out - IMAGES).mean() > 1


def test_deserialised_by_keras_by_registered_name():
    layer = keras.layers.deserialize(keras.layers.serialize(RandomBlobs(max_count=2, seed=1)))
    assert isinstance(layer, RandomBlobs) and layer.max_count == 2
