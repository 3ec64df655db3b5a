"""PNG pictures of an inspection: class counts, group galleries, duplicate pairs.

A gallery starts with the group's mean image (a shared background shows up
there clearly) followed by evenly spaced members, each titled with its index
and label, so a person can confirm a group at a glance.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from codapack.files import atomic_path  # noqa: E402

COLUMNS = 8


def save_class_counts(path, counts, class_names):
    """Bar chart of images per class.

    Args:
        path: PNG to write.
        counts: int array (K,).
        class_names: K names.
    """
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(counts)), 4))
    bars = ax.bar(range(len(counts)), counts, color="tab:blue")
    ax.bar_label(bars, labels=[str(int(c)) for c in counts], fontsize=8)
    ax.set_xticks(range(len(counts)), class_names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("images")
    ax.set_title(f"images per class ({int(np.sum(counts))} in all)")
    _save(fig, path)


def save_group_gallery(path, images, indices, labels, class_names, title, max_images=39):
    """The group's mean image and up to `max_images` members.

    Args:
        path: PNG to write.
        images: the whole image array (n, H, W, 3).
        indices: the group's members.
        labels: all labels (n,).
        class_names: names of the class ids.
        title: the figure's title.
        max_images: members shown, evenly spaced over the group.
    """
    indices = np.asarray(indices)
    shown = indices[np.linspace(0, len(indices) - 1, min(max_images, len(indices))).astype(int)]
    tiles = [(_mean_image(images, indices), f"mean of {len(indices)}")]
    tiles += [(images[i], f"#{i} {_short(class_names[labels[i]])}") for i in shown]
    _save(_tile_figure(tiles, title), path)


def save_pair_gallery(path, images, pairs, class_names, title, max_pairs=16):
    """Pairs side by side, each titled with index and label; "!" marks labels that differ.

    Args:
        path: PNG to write.
        images: the whole image array.
        pairs: pair dicts from `codapack.inspection.duplicates`.
        class_names: names of the class ids.
        title: the figure's title.
        max_pairs: pairs shown.
    """
    tiles = []
    for pair in pairs[:max_pairs]:
        mark = "" if pair["same_label"] else " !"
        for side in ("a", "b"):
            label = _short(class_names[pair[f"label_{side}"]])
            tiles.append((images[pair[side]], f"#{pair[side]} {label}{mark}"))
    _save(_tile_figure(tiles, title), path)


def _tile_figure(tiles, title):
    rows = max(1, -(-len(tiles) // COLUMNS))
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(COLUMNS * 1.4, rows * 1.55 + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, caption) in zip(axes.flat, tiles):
        ax.imshow(np.asarray(image).astype(np.uint8))
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _mean_image(images, indices):
    # Summed in chunks so a large group does not need a float copy of all its images.
    total = np.zeros(images.shape[1:], dtype=np.float64)
    for start in range(0, len(indices), 1024):
        total += images[indices[start:start + 1024]].astype(np.float64).sum(axis=0)
    return total / len(indices)


def _short(name, width=12):
    return name if len(name) <= width else name[:width - 1] + "."


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
