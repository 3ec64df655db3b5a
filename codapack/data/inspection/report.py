"""`inspect_dataset`: run every check on one data set and write DIR/report.json with its pictures.

report.json holds, for scripts and for `codapack clean`:
    data, sha256, n, profile, features (extractor used), settings, seconds,
    class_counts {name: count}, class_counts_png,
    groups [{name, kind, size, indices, labels {name: count}, label_association, why, gallery,
             score, threshold, scores (one per index)}],
    exact_duplicates {sets, pairs [{a, b, label_a, label_b, same_label}], gallery},
    near_duplicates {max_difference, pairs [... with difference], gallery}.
"""

import dataclasses
import os
import time

import numpy as np

from codapack.files import write_json
from codapack.data.inspection import duplicates, gallery, outliers, overlays
from codapack.data.inspection.features import DEFAULT_GRID, extract_features

REPORT_NAME = "report.json"


@dataclasses.dataclass(frozen=True)
class InspectOptions:
    """Settings of an inspection; every default is what `codapack inspect` uses.

    Args:
        extractor: "auto", "pixels" or "mobilenet_v2".
        weights: MobileNetV2 no-top weights file, or None.
        grid: cells per side of the `pixels` features.
        neighbors: k of the nearest-neighbour graphs.
        min_group_size: smallest recurring-background group.
        max_label_association: above it a group is reported as class-tied, not background.
        overlay_threshold: robust z-score of a member of a laid-over picture;
            lower it to admit fainter groups (see `overlays.find_overlays`).
        overlays: also run the search for laid-over pictures (`overlay-N`, `class-tied-N`)
            on what the recurring-background search left. On by default: it adds no group on
            the kit's or BloodMNIST's clean cells and finds the 12 generated settings of
            tests/test_inspection_overlays.py.
        isolated_threshold: robust z-score of an isolated image.
        near_difference: largest mean pixel difference (0..255) of near duplicates.
        exemplars: indices for exemplar mode (empty: off).
        exemplar_threshold: cosine similarity for exemplar mode.
    """

    extractor: str = "auto"
    weights: str | None = None
    grid: int = DEFAULT_GRID
    neighbors: int = 10
    min_group_size: int = 20
    max_label_association: float = 0.5
    overlay_threshold: float = overlays.DEFAULT_THRESHOLD
    overlays: bool = True
    isolated_threshold: float = 8.0
    near_difference: float = duplicates.DEFAULT_NEAR_DIFFERENCE
    exemplars: tuple = ()
    exemplar_threshold: float = 0.8


def inspect_dataset(dataset, profile, out_dir, options=InspectOptions()):
    """Inspect `dataset` and write report.json and PNGs into `out_dir`.

    Args:
        dataset: a `codapack.dataset.Dataset`.
        profile: its competition `Profile` (class names).
        out_dir: folder to create or update.
        options: `InspectOptions`.

    Returns:
        The report as a dict (also written to out_dir/report.json).
    """
    start = time.perf_counter()
    images, labels, names = dataset.images, dataset.labels, list(profile.classes)
    features = extract_features(images, options.extractor, weights=options.weights, grid=options.grid)
    embedding = outliers.embed(features.values)
    groups = outliers.background_groups(
        embedding, labels, profile.num_classes, neighbors=options.neighbors,
        min_size=options.min_group_size, max_association=options.max_label_association)
    # Strong blends form their own components; the search for laid-over pictures
    # then looks at the rest, where fainter sources and pastes hide.
    if options.overlays:
        taken = np.concatenate([g.indices for g in groups]) if groups else np.array([], dtype=int)
        groups += overlays.overlay_groups(images, labels, profile.num_classes, threshold=options.overlay_threshold,
                                          min_size=options.min_group_size, exclude=taken,
                                          max_association=options.max_label_association)
    flagged = np.concatenate([g.indices for g in groups]) if groups else np.array([], dtype=int)
    isolated = outliers.isolated_images(embedding, exclude=flagged, neighbors=options.neighbors,
                                        threshold=options.isolated_threshold)
    groups += [isolated] if isolated else []
    if options.exemplars:
        groups.append(outliers.exemplar_group(features.values, options.exemplars,
                                              threshold=options.exemplar_threshold))
    sets = duplicates.exact_duplicate_sets(images)
    exact = duplicates.exact_duplicate_pairs(sets, labels)
    near = duplicates.near_duplicate_pairs(images, embedding, labels,
                                           max_difference=options.near_difference, exclude_sets=sets)
    counts = np.bincount(labels, minlength=profile.num_classes)

    gallery.save_class_counts(os.path.join(out_dir, "class_counts.png"), counts, names)
    group_records = [_group_record(g, images, labels, names, out_dir) for g in groups]
    report = {
        "data": dataset.path, "sha256": dataset.sha256, "n": len(labels), "profile": profile.name,
        "features": {"extractor": features.extractor, "description": features.description,
                     "dims": int(features.values.shape[1])},
        "settings": dataclasses.asdict(options),
        "class_counts": dict(zip(names, counts.tolist())), "class_counts_png": "class_counts.png",
        "groups": group_records,
        "exact_duplicates": {"sets": len(sets), "images": sum(len(s) for s in sets),
                             "pairs": exact, "gallery": _pairs_png(out_dir, "exact_duplicates", exact, images, names)},
        "near_duplicates": {"max_difference": options.near_difference, "pairs": near,
                            "gallery": _pairs_png(out_dir, "near_duplicates", near, images, names)},
    }
    report["seconds"] = round(time.perf_counter() - start, 1)
    write_json(os.path.join(out_dir, REPORT_NAME), report)
    return report


def _group_record(group, images, labels, names, out_dir):
    png = os.path.join("galleries", f"{group.name}.png")
    label_counts = np.bincount(labels[group.indices], minlength=len(names))
    scored = "" if group.score is None else f", score {group.score:.1f}"
    scored += "" if group.threshold is None else f" (threshold {group.threshold:g})"
    title = (f"{group.name}: {len(group.indices)} images{scored}, labels "
             f"{', '.join(f'{names[k]} {c}' for k, c in enumerate(label_counts) if c)}")
    gallery.save_group_gallery(os.path.join(out_dir, png), images, group.indices, labels, names, title)
    return {"name": group.name, "kind": group.kind, "size": int(len(group.indices)),
            "indices": group.indices.tolist(),
            "labels": {names[k]: int(c) for k, c in enumerate(label_counts) if c},
            "label_association": round(outliers.label_association(labels[group.indices], len(names), labels), 3),
            "why": group.why, "gallery": png,
            "score": None if group.score is None else round(float(group.score), 3),
            "threshold": group.threshold,
            "scores": None if group.scores is None else np.round(group.scores, 3).tolist()}


def _pairs_png(out_dir, name, pairs, images, names):
    if not pairs:
        return None
    png = os.path.join("galleries", f"{name}.png")
    disagree = sum(not p["same_label"] for p in pairs)
    gallery.save_pair_gallery(os.path.join(out_dir, png), images, pairs, names,
                              f"{name.replace('_', ' ')}: {len(pairs)} pairs, {disagree} with different "
                              f"labels (marked !); first {min(16, len(pairs))} shown")
    return png


def format_summary(report):
    """A few lines for the terminal: class table, groups, duplicates."""
    width = max(len(name) for name in report["class_counts"])
    lines = [f"{report['data']}: {report['n']} images; features: {report['features']['description']}",
             "class counts:"]
    lines += [f"  {name:<{width}}  {count:>6}" for name, count in report["class_counts"].items()]
    lines.append(f"groups ({len(report['groups'])}):")
    for g in report["groups"]:
        score = "" if g.get("score") is None else f"score {g['score']:.1f}  "
        lines.append(f"  {g['name']:<14} {g['size']:>6} images  {score}label association "
                     f"{g['label_association']:.2f}  {g['gallery']}")
        if g["kind"] == "class-tied":
            lines.append(f"  warning: {g['name']} is tied to one class; it may be that class's real look, check "
                         "its gallery before dropping it")
    for key in ("exact_duplicates", "near_duplicates"):
        pairs = report[key]["pairs"]
        lines.append(f"{key.replace('_', ' ')}: {len(pairs)} pairs, "
                     f"{sum(p['same_label'] for p in pairs)} with the same label")
    lines.append(f"done in {report['seconds']} s")
    return "\n".join(lines)
