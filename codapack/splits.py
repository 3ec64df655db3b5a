"""Stratified, seeded train/val/test splits, saved once and reused by every stage.

A split is stored as JSON (indices plus the hash of the data it was made for)
under the state folder, keyed by that hash and the profile's split settings, so
training, evaluation and the harness all score on the same held-out images.

When the profile sets `split.final_fraction`, a fixed, stratified part of the
held-out images is carved out of `test` as a fourth index set, `final`: the
local counterpart of the platform's final phase. Train and val are drawn
exactly as without it, so runs stay comparable; only `test` shrinks. Training
reads train and val only; only `harness --phase final` scores `final`, and the
leaderboard hides those scores until they are revealed on purpose.

A file may also carry its split (an int8 `split` array, codes in `SPLIT_CODES`):
`codapack augment` writes one, so that the augmented copies of training images
stay in train and val/test hold exactly the source file's held-out images.
"""

import dataclasses
import os

import numpy as np
from sklearn.model_selection import train_test_split

from codapack.errors import CodapackError, fail_for
from codapack.files import read_json, write_json

SPLIT_NAMES = ("train", "val", "test")
FINAL = "final"
SPLIT_CODES = {"train": 0, "val": 1, "test": 2, FINAL: 3}
STATE_ENV = "CODAPACK_HOME"


def state_dir():
    """The folder for codapack's own state (splits, leaderboard): $CODAPACK_HOME or ./.codapack."""
    return os.environ.get(STATE_ENV) or os.path.join(os.getcwd(), ".codapack")


@dataclasses.dataclass(frozen=True)
class Split:
    """Index arrays of one train/val/test split of one dataset.

    Args:
        data_sha256: hash of the dataset the indices refer to.
        seed: seed the split was drawn with.
        val_fraction: fraction held out for validation.
        test_fraction: fraction held out for testing.
        indices: mapping "train"/"val"/"test" (and "final" when
            `final_fraction` > 0) to sorted int64 arrays.
        final_fraction: fraction of all images held back for the final phase,
            carved out of the test fraction; 0 means no final split.
        carried: the indices come from the data file itself, not from seed and fractions.
    """

    data_sha256: str
    seed: int
    val_fraction: float
    test_fraction: float
    indices: dict
    final_fraction: float = 0.0
    carried: bool = False

    @property
    def split_id(self):
        """Short identifier that changes when the data or the split settings change."""
        if self.carried:
            return f"{self.data_sha256[:16]}-carried"
        return split_id(self.data_sha256, self.seed, self.val_fraction, self.test_fraction, self.final_fraction)

    def __getitem__(self, name):
        if name == FINAL and FINAL not in self.indices:
            raise CodapackError("this split holds back no final images; set `split.final_fraction` in the "
                                "competition profile to get a final phase")
        if name not in self.indices:
            raise CodapackError(f"unknown split `{name}`; choose one of {', '.join(SPLIT_NAMES)}")
        return self.indices[name]

    def to_dict(self):
        return {
            "data_sha256": self.data_sha256,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "final_fraction": self.final_fraction,
            "indices": {k: v.tolist() for k, v in self.indices.items()},
            "carried": self.carried,
        }

    @classmethod
    def from_dict(cls, raw):
        return cls(
            data_sha256=raw["data_sha256"],
            seed=raw["seed"],
            val_fraction=raw["val_fraction"],
            test_fraction=raw["test_fraction"],
            indices={k: np.asarray(v, dtype=np.int64) for k, v in raw["indices"].items()},
            final_fraction=raw.get("final_fraction", 0.0),
            carried=raw.get("carried", False),
        )

    def codes(self, n):
        """One code of `SPLIT_CODES` per image of a dataset of `n` images."""
        codes = np.full(n, -1, dtype=np.int8)
        for name, indices in self.indices.items():
            codes[indices] = SPLIT_CODES[name]
        return codes


def split_id(data_sha256, seed, val_fraction, test_fraction, final_fraction=0.0):
    """Identifier of a split: the data hash prefix and the split settings."""
    final = f"-f{final_fraction:g}" if final_fraction else ""
    return f"{data_sha256[:16]}-s{seed}-v{val_fraction:g}-t{test_fraction:g}{final}"


def make_split(labels, data_sha256, *, seed, val_fraction, test_fraction, final_fraction=0.0):
    """Draw a stratified split of `labels`.

    Args:
        labels: (n,) class ids.
        data_sha256: hash of the data, recorded in the split.
        seed: random seed.
        val_fraction: fraction for validation.
        test_fraction: fraction held out from training (test plus final).
        final_fraction: part of all images, taken out of the test fraction,
            held back for the final phase; 0 for none.

    Returns:
        A `Split` whose index sets are disjoint and cover 0..n-1.

    Raises:
        CodapackError: a class has too few images to appear in every split.
    """
    everything = np.arange(len(labels))
    try:
        rest, test = train_test_split(everything, test_size=test_fraction, random_state=seed,
                                      stratify=labels)
        val_of_rest = val_fraction / (1.0 - test_fraction)
        train, val = train_test_split(rest, test_size=val_of_rest, random_state=seed,
                                      stratify=labels[rest])
        parts = dict(zip(SPLIT_NAMES, (train, val, test)))
        if final_fraction:
            # Carved after train and val are drawn, so they are the same with or without a final split.
            parts["test"], parts[FINAL] = train_test_split(test, test_size=final_fraction / test_fraction,
                                                           random_state=seed, stratify=labels[test])
    except ValueError as exc:
        counts = np.bincount(labels)
        raise CodapackError(f"cannot make a stratified split: {exc}. Images per class: "
                            f"{counts.tolist()}; every class needs a few images in each split") from None
    indices = {name: np.sort(part).astype(np.int64) for name, part in parts.items()}
    return Split(data_sha256, seed, val_fraction, test_fraction, indices, final_fraction)


def split_for(dataset, profile, *, folder=None):
    """Load the saved split of `dataset` under `profile`'s settings, making it on first use.

    Args:
        dataset: a validated `Dataset`.
        profile: the competition `Profile` holding seed and fractions.
        folder: where splits are kept; defaults to `<state_dir()>/splits`.

    Returns:
        The `Split`, identical on every call for the same data and settings; the file's own
        split when it carries one.
    """
    if dataset.split_codes is not None:
        return carried_split(dataset)
    folder = folder or os.path.join(state_dir(), "splits")
    settings = dict(seed=profile.split_seed, val_fraction=profile.val_fraction,
                    test_fraction=profile.test_fraction, final_fraction=profile.final_fraction)
    path = os.path.join(folder, f"{split_id(dataset.sha256, **settings)}.json")
    if os.path.exists(path):
        saved = load_split(path)
        if saved.data_sha256 != dataset.sha256:
            raise fail_for(path, "was made for different data; delete it to make a new split")
        return saved
    fresh = make_split(dataset.labels, dataset.sha256, **settings)
    write_json(path, fresh.to_dict())
    return fresh


def carried_split(dataset):
    """The `Split` a data file carries in its `split` array."""
    indices = {name: np.flatnonzero(dataset.split_codes == code).astype(np.int64)
               for name, code in SPLIT_CODES.items()}
    if not len(indices[FINAL]):
        del indices[FINAL]
    n = len(dataset)
    return Split(dataset.sha256, seed=-1, val_fraction=len(indices["val"]) / n,
                 test_fraction=(n - len(indices["train"]) - len(indices["val"])) / n, indices=indices,
                 final_fraction=len(indices.get(FINAL, ())) / n, carried=True)


def load_split(path):
    """Read a split written by `split_for`."""
    try:
        return Split.from_dict(read_json(path))
    except (OSError, ValueError, KeyError) as exc:
        raise fail_for(path, f"not a readable split file ({exc})") from None
