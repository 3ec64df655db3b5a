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
