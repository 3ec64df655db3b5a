"""Data inspection and cleaning, the stage before training.

    features.py    image features: weight-free colour layout or an ImageNet backbone
    duplicates.py  exact and near duplicates with their label agreement
    overlays.py    recurring backgrounds: pictures laid over many images, with scores
    outliers.py    isolated images, exemplar matches (and the former background search)
    gallery.py     PNGs: class counts, group galleries, duplicate pairs
    report.py      `inspect_dataset`: run the checks, write DIR/report.json
    cleaning.py    `clean_dataset`: write a new .npz without chosen groups
    commands.py    the `codapack inspect` and `codapack clean` verbs
"""
