"""Data inspection, the first step of the data stage.

    features.py    image features: weight-free colour layout or an ImageNet backbone
    duplicates.py  exact and near duplicates with their label agreement
    proposals.py   candidate groups for overlays.py: the whitened residual space, ICA tails, neighbourhoods
    overlays.py    recurring backgrounds: pictures laid over many images, with scores
    signature.py   a group's pattern beyond natural variation: who carries it (blends and pastes)
    pastes.py      a paste's region decided by its pixels
    outliers.py    isolated images, exemplar matches (and the former background search)
    gallery.py     PNGs: class counts, group galleries, duplicate pairs
    report.py      `inspect_dataset`: run the checks, write DIR/report.json

`codapack/data/cleaning.py` then writes a new .npz without the chosen groups; the verbs are in
`codapack/cli/curation.py`.
"""
