"""The data-stage verbs: `codapack inspect`, `codapack clean` and `codapack augment`."""

import click

from codapack.cli.options import command, emit_json, json_option, profile_option
from codapack.data.cleaning import DUPLICATE_MODES, clean_dataset, removed_list_path
from codapack.data.inspection.features import EXTRACTORS
from codapack.data.inspection.report import InspectOptions, format_summary, inspect_dataset
from codapack.data.policies import OFFLINE_POLICIES
from codapack.profile import load_profile


def _index_list(ctx, param, value):
    try:
        return tuple(int(v) for v in value.split(",") if v.strip()) if value else ()
    except ValueError:
        raise click.BadParameter(f"should be comma-separated image indices, e.g. 12,40. Received: {value!r}")


@command()
@click.argument("data_path", metavar="DATA", type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder for report.json and the PNGs.")
@click.option("--features", "extractor", default="auto", type=click.Choice(EXTRACTORS),
              help="Feature extractor; auto: mobilenet_v2 when --weights is given, else pixels (no weights).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False),
              help="MobileNetV2 no-top .h5 weights file for --features mobilenet_v2.")
@click.option("--exemplars", default="", callback=_index_list,
              help="Exemplar mode: comma-separated indices; adds group `exemplar` of everything similar.")
@click.option("--similarity", "exemplar_threshold", default=0.8, help="Cosine similarity for exemplar mode.")
@click.option("--min-group-size", default=20, help="Smallest recurring-background group.")
@click.option("--overlays/--no-overlays", default=True, show_default=True,
              help="Also search for pictures laid over the images beyond the recurring backgrounds "
                   "(groups overlay-N, class-tied-N); check each gallery before dropping.")
@click.option("--threshold", "overlay_threshold", default=6.0, show_default=True,
              help="Robust z-score of a member of a laid-over picture; lower it (e.g. 4) to admit a faint group.")
@click.option("--max-label-association", default=0.5,
              help="A group whose labels are more one-class than this is reported as class-tied (a warning).")
@click.option("--isolated-threshold", default=8.0, help="Robust z-score of the neighbour distance of isolated images.")
@click.option("--near-difference", default=4.0, help="Mean pixel difference (0..255) of near duplicates.")
@profile_option
@json_option
def inspect(data_path, out_dir, extractor, weights, exemplars, exemplar_threshold, min_group_size, overlays,
            overlay_threshold, max_label_association, isolated_threshold, near_difference, profile_name, as_json):
    """Report class counts, duplicates and groups of outliers in DATA, with a gallery per group.

    Writes OUT/report.json (every group's kind, size, indices and labels; duplicate pairs),
    OUT/class_counts.png and OUT/galleries/*.png. Drop groups with `codapack clean`.
    """
    from codapack.dataset import load_dataset

    profile = load_profile(profile_name)
    dataset = load_dataset(data_path, profile)
    if exemplars and max(exemplars) >= len(dataset):
        raise click.BadParameter(f"indices should be below {len(dataset)}. Received: {max(exemplars)}",
                                 param_hint="--exemplars")
    options = InspectOptions(extractor=extractor, weights=weights, exemplars=exemplars,
                             exemplar_threshold=exemplar_threshold, min_group_size=min_group_size,
                             max_label_association=max_label_association, overlays=overlays,
                             overlay_threshold=overlay_threshold,
                             isolated_threshold=isolated_threshold, near_difference=near_difference)
    report = inspect_dataset(dataset, profile, out_dir, options)
    click.echo(format_summary(report))
    click.echo(f"report: {out_dir}/report.json")
    if as_json:
        emit_json(report)


@command()
@click.argument("data_path", metavar="DATA", type=click.Path())
@click.option("--report", "report_dir", required=True, type=click.Path(), help="Folder written by `codapack inspect`.")
@click.option("--drop", default="", help="Comma-separated group names (background-1) or kinds (background).")
@click.option("--duplicates", default="keep", type=click.Choice(DUPLICATE_MODES),
              help="Exact duplicates: keep them, dedupe (keep the first copy) or drop every copy.")
@click.option("--min-score", type=float, default=None,
              help="Drop only the members of the chosen groups whose score reaches this (see report.json `scores`).")
@click.option("--out", "out_path", required=True, type=click.Path(), help="The cleaned .npz to write.")
@profile_option
@json_option
def clean(data_path, report_dir, drop, duplicates, min_score, out_path, profile_name, as_json):
    """Write a copy of DATA without the chosen groups; DATA itself is never modified.

    The removed indices, by reason, go to OUT.removed.json beside OUT.
    """
    groups = tuple(name.strip() for name in drop.split(",") if name.strip())
    record = clean_dataset(data_path, report_dir, out_path, load_profile(profile_name),
                           drop=groups, duplicates=duplicates, min_score=min_score)
    reasons = ", ".join(f"{name} {len(ids)}" for name, ids in record["removed_by_reason"].items()) or "nothing"
    click.echo(f"{out_path}: kept {record['kept']} images, removed {record['removed_count']} ({reasons}); "
               f"removed indices in {removed_list_path(out_path)}")
    if as_json:
        emit_json(record)


@command()
@click.argument("data_path", metavar="DATA", type=click.Path())
@click.option("--out", "out_path", required=True, type=click.Path(), help="The enlarged .npz to write.")
@click.option("--per-class", type=click.IntRange(min=1), required=True,
              help="Bring every class of the train split up to this many images.")
@click.option("--policy", type=click.Choice(OFFLINE_POLICIES), default="medium",
              help="Augmentation policy of the copies (layers listed in codapack/data/policies.py).")
@click.option("--seed", default=0, help="Seed of which images are copied and of the augmentation.")
@profile_option
@json_option
def augment(data_path, out_path, per_class, policy, seed, profile_name, as_json):
    """Write DATA plus augmented copies of its train split, up to --per-class images per class.

    The output keeps every image of DATA and carries DATA's saved train/val/test split, with the
    copies in train only: training on it validates and tests on exactly DATA's held-out images,
    and no copy of a training image can leak into them. OUT.augmented.json records the counts.
    """
    from codapack.data.offline_augmentation import write_augmented_dataset

    summary = write_augmented_dataset(data_path, out_path, load_profile(profile_name), per_class=per_class,
                                      policy=policy, seed=seed)
    click.echo(f"{summary['output']}: {summary['images']} images, {summary['added']} augmented copies added "
               f"to the train split ({policy}) in {summary['seconds']:.1f} s")
    for name, before in summary["train_before"].items():
        click.echo(f"  {name:<24} {before:>6} -> {summary['train_after'][name]:>6}")
    if as_json:
        emit_json(summary)
