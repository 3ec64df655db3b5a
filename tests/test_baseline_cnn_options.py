"""The baseline CNN's robustness options: per-image standardisation and convolutions per block."""

import numpy as np
import pytest

from codapack.submission.networks import build_network


def test_standardized_network_undoes_per_channel_affine_changes_first():
    import keras

    network = build_network("baseline_cnn", (24, 24, 3), 4, {"filters": [8, 16], "dense": [8], "standardize": True})
    first = keras.Model(network.input, network.get_layer("standardize").output)
    images = np.random.default_rng(0).uniform(40, 200, (6, 24, 24, 3)).astype(np.float32)
    scaled = images / 255.0
    mean, var = scaled.mean(axis=(1, 2), keepdims=True), scaled.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(first.predict(images, verbose=0), (scaled - mean) / np.sqrt(var + 1e-3), atol=1e-4)
    # A stain gain, a haze or a contrast change: an affine map of each channel's values.
    gain, offset = np.array([0.7, 1.1, 0.9], np.float32), np.array([25.0, -10.0, 5.0], np.float32)
    changed = images * gain + offset
    moved = np.abs(first.predict(changed, verbose=0) - first.predict(images, verbose=0)).max()
    # Outputs have unit variance; only the epsilon of 1e-3 keeps them from being equal.
    assert moved < 0.05, moved


def test_convs_adds_convolutions_to_the_blocks_asked():
    network = build_network("baseline_cnn", (24, 24, 3), 4, {"filters": [8, 16], "convs": [1, 3]})
    names = [layer.name for layer in network.layers if layer.name.startswith("conv")]
    assert names == ["conv0", "conv1", "conv1_1", "conv1_2"]
    with pytest.raises(ValueError, match=r"`convs` should hold one count >= 1 per block \(2\). Received: convs=\[1\]"):
        build_network("baseline_cnn", (24, 24, 3), 4, {"filters": [8, 16], "convs": [1]})


def _bilinear_field(tiles, size):
    """NumPy reference of the layer's interpolation: half-pixel centres, edges clamped (TF's bilinear)."""
    grid = tiles.shape[1]
    coords = np.clip((np.arange(size) + 0.5) * grid / size - 0.5, 0, grid - 1)
    low = np.floor(coords).astype(int)
    high, frac = np.minimum(low + 1, grid - 1), coords - low
    rows = tiles[:, low] * (1 - frac)[None, :, None] + tiles[:, high] * frac[None, :, None]
    return rows[:, :, low] * (1 - frac)[None, None, :] + rows[:, :, high] * frac[None, None, :]


def test_flat_field_divides_by_the_tiled_brightness_and_cancels_a_smooth_light_falloff():
    from codapack.submission.networks import FlatField

    rng = np.random.default_rng(1)
    images = rng.uniform(0.2, 0.9, (3, 32, 32, 3)).astype(np.float32)
    layer = FlatField(window=8, epsilon=0.05)
    tiles = images.mean(axis=-1).reshape(3, 4, 8, 4, 8).mean(axis=(2, 4))
    expected = images / (_bilinear_field(tiles, 32)[..., None] + 0.05)
    np.testing.assert_allclose(np.asarray(layer(images)), expected, rtol=1e-4)
    # Vignetting: light falling from 1.0 at the centre to 0.4 at the corners, a smooth factor on every channel.
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    falloff = (0.4 + 0.6 * np.exp(-((yy - 0.5) ** 2 + (xx - 0.5) ** 2) / 0.15))[None, ..., None].astype(np.float32)
    before = np.abs(images * falloff - images).mean() / images.mean()
    after = np.abs(np.asarray(layer(images * falloff)) - np.asarray(layer(images))).mean() / np.asarray(layer(images)).mean()
    assert after < before / 3, (before, after)
    # The stain's colour, the ratio between channels, is kept exactly.
    out = np.asarray(layer(images))
    np.testing.assert_allclose(out[..., 0] / out[..., 1], images[..., 0] / images[..., 1], rtol=1e-4)
    assert FlatField.from_config(layer.get_config()).get_config()["window"] == 8


def test_flat_field_option_puts_the_layer_before_standardising():
    network = build_network("baseline_cnn", (32, 32, 3), 4, {"filters": [8, 16], "dense": [8], "flat_field": 8,
                                                             "standardize": True})
    names = [layer.name for layer in network.layers]
    assert names.index("scale_0_1") < names.index("flat_field") < names.index("standardize")
