"""Competition profiles: everything competition-specific, read from one TOML file.

Every stage asks the profile instead of holding constants, so another
competition is another TOML file in `codapack/competitions/` (or any path).
"""

import dataclasses
import os
import tomllib

from codapack.errors import fail_for

COMPETITIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "competitions")
DEFAULT_PROFILE = "bloodcells"
WORKDIR_CHOICES = ("submission", "elsewhere")
MB = 1024 * 1024
# How a zip's size fares on upload (`Profile.upload_size`).
UPLOAD_FAILS, UPLOAD_RISKY, UPLOAD_SAFE = "fails", "risky", "safe"


@dataclasses.dataclass(frozen=True)
class Profile:
    """The facts about one competition that every stage needs.

    Args:
        name: short identifier, e.g. "bloodcells".
        title: one-line human description.
        input_shape: shape of one image, e.g. (96, 96, 3).
        input_dtypes: dtypes the platform may pass, e.g. ("uint8", "float32").
        min_value: smallest pixel value.
        max_value: largest pixel value.
        classes: class names in id order.
        strict_output: the platform rejects predictions that are not an integer
            numpy array (`output.strict`, optional, default false: a list or
            whole-number floats are converted, as np.save-then-score does).
        time_limit_s: wall-clock limit over `Model()` plus `predict`.
        safe_upload_mb: zip size known to upload fine.
        failing_upload_mb: zip size at which uploads fail.
        expected_test_images: images in the hidden test set, for predicting the
            remote run's time; 0 when unknown.
        memory_limit_mb: the harness kills a submission whose processes hold more
            resident memory than this (optional `limits.memory_limit_mb`); 0: no limit.
        platform_python: Python version the platform runs.
        platform_packages: pinned requirements of the platform.
        platform_device: "cpu" or "gpu".
        platform_workdir: "submission" or "elsewhere" (see the TOML file).
        platform_image: the Docker image the platform runs submissions in, for
            `harness --sandbox docker` (optional `platform.image`); "" when unknown.
        split_seed: seed of the stratified split.
        val_fraction: fraction of the data in the validation split.
        test_fraction: fraction of the data held out from training (test plus final).
        final_fraction: part of the data, carved out of the test fraction, held
            back for the final phase (optional in the TOML file; 0: no final phase).
        source: the file the profile was read from.
    """

    name: str
    title: str
    input_shape: tuple
    input_dtypes: tuple
    min_value: float
    max_value: float
    classes: tuple
    time_limit_s: float
    safe_upload_mb: float
    failing_upload_mb: float
    platform_python: str
    platform_packages: tuple
    platform_device: str
    platform_workdir: str
    split_seed: int
    val_fraction: float
    test_fraction: float
    final_fraction: float = 0.0
    expected_test_images: int = 0
    strict_output: bool = False
    memory_limit_mb: float = 0.0
    platform_image: str = ""
    source: str = ""

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def safe_upload_bytes(self):
        return self.safe_upload_mb * MB

    def upload_size(self, size_bytes):
        """How a zip of `size_bytes` fares on upload: (UPLOAD_FAILS, _RISKY or _SAFE, the sentence that says so)."""
        mb = size_bytes / MB
        if size_bytes >= self.failing_upload_mb * MB:
            return UPLOAD_FAILS, f"{mb:.1f} MB; uploads of {self.failing_upload_mb:g} MB and more fail"
        if size_bytes >= self.safe_upload_bytes:
            return UPLOAD_RISKY, f"{mb:.1f} MB, above the {self.safe_upload_mb:g} MB known to upload safely"
        return UPLOAD_SAFE, (f"{mb:.2f} MB, safe to upload (safe below {self.safe_upload_mb:g} MB, "
                             f"uploads fail from {self.failing_upload_mb:g} MB)")

    def to_dict(self):
        """Return the profile as plain JSON-compatible values."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out


def resolve_profile_path(name_or_path):
    """Map a profile name ("bloodcells") or a path to the TOML file it means."""
    if os.path.exists(name_or_path) or name_or_path.endswith(".toml"):
        return name_or_path
    return os.path.join(COMPETITIONS_DIR, f"{name_or_path}.toml")


def load_profile(name_or_path=DEFAULT_PROFILE):
    """Read and validate a competition profile.

    Args:
        name_or_path: a bundled profile's name or a path to a TOML file.

    Returns:
        A `Profile`.

    Raises:
        CodapackError: the file is missing, not TOML, or lacks or mistypes a field.
    """
    path = resolve_profile_path(name_or_path)
    if not os.path.isfile(path):
        bundled = sorted(f[:-5] for f in os.listdir(COMPETITIONS_DIR) if f.endswith(".toml"))
        raise fail_for(path, f"no such competition profile. Bundled profiles: {', '.join(bundled)}")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise fail_for(path, f"not a valid TOML file ({exc})") from None
    return _profile_from_toml(raw, path)


def _field(raw, path, dotted, kind):
    node = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise fail_for(path, f"missing field `{dotted}`")
        node = node[part]
    if kind is float and isinstance(node, int) and not isinstance(node, bool):
        node = float(node)
    if not isinstance(node, kind) or (isinstance(node, bool) and kind is not bool):
        raise fail_for(path, f"`{dotted}` should be {kind.__name__}. Received: {node!r}")
    return node


def _profile_from_toml(raw, path):
    shape = tuple(_field(raw, path, "input.shape", list))
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise fail_for(path, f"`input.shape` should be three positive integers (H, W, C). Received: {list(shape)}")
    classes = tuple(_field(raw, path, "output.classes", list))
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise fail_for(path, "`output.classes` should list at least two distinct class names")
    workdir = _field(raw, path, "platform.workdir", str)
    if workdir not in WORKDIR_CHOICES:
        raise fail_for(path, f"`platform.workdir` should be one of {WORKDIR_CHOICES}. Received: {workdir!r}")
    val = _field(raw, path, "split.val_fraction", float)
    test = _field(raw, path, "split.test_fraction", float)
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise fail_for(path, "`split.val_fraction` and `split.test_fraction` should be in (0, 1) and sum below 1")
    final = _field(raw, path, "split.final_fraction", float) if "final_fraction" in raw["split"] else 0.0
    memory_limit = (_field(raw, path, "limits.memory_limit_mb", float)
                    if "memory_limit_mb" in raw.get("limits", {}) else 0.0)
    if memory_limit < 0:
        raise fail_for(path, f"`limits.memory_limit_mb` should be 0 (no limit) or a positive number of MB. "
                             f"Received: {memory_limit:g}")
    image = _field(raw, path, "platform.image", str) if "image" in raw.get("platform", {}) else ""
    if image != image.strip() or any(c.isspace() for c in image):
        raise fail_for(path, f"`platform.image` should be a Docker image name such as codalab/codalab-legacy:py3, "
                             f"or empty when unknown. Received: {image!r}")
    if not 0 <= final < test:
        raise fail_for(path, f"`split.final_fraction` should be at least 0 and below `split.test_fraction` ({test:g}), "
                             f"since the final images are carved out of the test images. Received: {final:g}")
    return Profile(
        name=_field(raw, path, "name", str),
        title=_field(raw, path, "title", str),
        input_shape=shape,
        input_dtypes=tuple(_field(raw, path, "input.dtypes", list)),
        min_value=_field(raw, path, "input.min_value", float),
        max_value=_field(raw, path, "input.max_value", float),
        classes=classes,
        time_limit_s=_field(raw, path, "limits.time_limit_s", float),
        safe_upload_mb=_field(raw, path, "limits.safe_upload_mb", float),
        failing_upload_mb=_field(raw, path, "limits.failing_upload_mb", float),
        platform_python=_field(raw, path, "platform.python", str),
        platform_packages=tuple(_field(raw, path, "platform.packages", list)),
        platform_device=_field(raw, path, "platform.device", str),
        platform_workdir=workdir,
        split_seed=_field(raw, path, "split.seed", int),
        val_fraction=val,
        test_fraction=test,
        final_fraction=final,
        expected_test_images=int(raw.get("limits", {}).get("expected_test_images", 0)),
        strict_output=_field(raw, path, "output.strict", bool) if "strict" in raw.get("output", {}) else False,
        memory_limit_mb=memory_limit,
        platform_image=image,
        source=os.path.abspath(path),
    )
