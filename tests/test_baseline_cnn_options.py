"""The baseline CNN's robustness options: per-image standardisation and convolutions per block."""

import numpy as np
import pytest

from submission.networks import build_network


def test_standardized_network_cannot_see_per_channel_affine_changes():
    network = build_network("baseline_cnn", (24, 24, 3), 4, {"filters": [8, 16], "dense": [8], "standardize": True})
    images = np.random.default_rng(0).uniform(40, 200, (6, 24, 24, 3)).astype(np.float32)
    gain, offset = np.array([0.7, 1.1, 0.9], np.float32), np.array([25.0, -10.0, 5.0], np.float32)
    # A stain gain, a haze or a contrast change: an affine map of each channel's values.
    changed = images * gain + offset
    plain = build_network("baseline_cnn", (24, 24, 3), 4, {"filters": [8, 16], "dense": [8]})
    moved = [np.abs(net.predict(changed, verbose=0) - net.predict(images, verbose=0)).max()
             for net in (network, plain)]
    assert moved[0] < 0.1 * moved[1], moved


def test_convs_adds_convolutions_to_the_blocks_asked():
    network = build_network("baseline_cnn", (24, 24, 3), 4, {"filters": [8, 16], "convs": [1, 3]})
    names = [layer.name for layer in network.layers if layer.name.startswith("conv")]
    assert names == ["conv0", "conv1", "conv1_1", "conv1_2"]
    with pytest.raises(ValueError, match=r"`convs` should hold one count >= 1 per block \(2\). Received: convs=\[1\]"):
        build_network("baseline_cnn", (24, 24, 3), 4, {"filters": [8, 16], "convs": [1]})
