"""``sedc explain`` on a data set: ground truth, ``--target true`` and several modes in one run.

- ``--ground-truth folders``: each image's parent folder names its class (the ImageFolder
  layout): an ImageNet wnid (``n02123045``) for ImageNet models, or a class name or id of the model.
- ``--ground-truth FILE.csv``: rows ``path,label`` (an optional ``path,label`` header). A relative
  path is looked up relative to the CSV file's folder first, then relative to the current folder
  (so the image ids that ``sedc explain`` records in results.jsonl work too); a row belongs to the
  image that is the same file. Labels are as for folders.
- ``--target true``: a misclassified image is explained with SEDC-T toward its true class, a
  correctly classified one with plain SEDC (its row's ``target`` is null).
- ``--mode mean,blur``: every image is explained in every mode; results are kept per image and mode.

Every label is resolved before any image is explained: an unknown one is a usage error (exit 2)
that suggests close names.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..base.errors import InputError, UsageError

FOLDERS = "folders"          # --ground-truth folders
TARGET_TRUE = "true"         # --target true
MAX_LISTED = 5               # unknown labels named in one error message


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------

def add_dataset_options(p: argparse.ArgumentParser) -> None:
    """``--ground-truth`` and ``--report`` (the ``sedc explain`` options of a data-set audit)."""
    group = p.add_argument_group("data sets (labels, misclassifications, report)")
    group.add_argument("--ground-truth", default=None, metavar="folders|FILE.csv",
                       help="the true class of each image: 'folders' reads it from the image's "
                            "parent folder (ImageFolder layout: an ImageNet wnid like n02123045, or "
                            "a class name or id of the model); FILE.csv holds rows 'path,label', "
                            "paths relative to the CSV's folder (or to the current folder). Rows "
                            "gain true_class, true_label and correct")
    group.add_argument("--report", action="store_true",
                       help="at the end of the run, write DIR/report.html and DIR/summary.json "
                            "from all of DIR/results.jsonl (as 'sedc report DIR' does)")


def check_dataset_options(args: argparse.Namespace) -> None:
    """Usage checks that need no model: ``--target true`` needs ``--ground-truth``."""
    if is_target_true(args.target) and args.ground_truth is None:
        raise UsageError("--target true explains each misclassified image toward its true class: "
                         "it needs --ground-truth folders or --ground-truth FILE.csv")
    spec = args.ground_truth
    if spec is not None and spec != FOLDERS and not Path(spec).expanduser().is_file():
        raise UsageError(f"--ground-truth: expected 'folders' or a CSV file of 'path,label' rows; "
                         f"file not found: '{spec}'")


def is_target_true(target: str | None) -> bool:
    """Whether ``--target`` asks for each image's true class."""
    return target is not None and target.strip().lower() == TARGET_TRUE


# --------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------

def ground_truth(spec: str | None, images: Sequence[Path], labels: list[str]) -> list[int | None] | None:
    """The true class of each image (None where a CSV has no row for it); None without ``spec``.

    Raises
    ------
    UsageError
        For unknown labels (with suggestions), an unreadable or malformed CSV, or a CSV that
        names none of the images.
    """
    if spec is None:
        return None
    if spec == FOLDERS:
        return from_folders(images, labels)
    return from_csv(Path(spec).expanduser(), images, labels)


def resolve_label(name: str, labels: list[str]) -> int:
    """The class id of a label: an ImageNet wnid (ImageNet models), a class id or a class name.

    Raises
    ------
    ValueError
        For an unknown label; the message suggests close names (or wnids).
    """
    from ..models import resolve_class
    from ..models.labels import is_imagenet_labels, is_wnid, wnid_to_class

    if is_wnid(name):
        if is_imagenet_labels(labels):
            return wnid_to_class(name)
        if name.strip() not in labels:
            raise InputError(f"{name.strip()!r} is an ImageNet wnid, but the model's classes are not "
                             "the ImageNet-1k classes; name classes by the model's labels or ids")
    return resolve_class(name, labels)


def from_folders(images: Sequence[Path], labels: list[str]) -> list[int | None]:
    """Each image's class from the name of its parent folder."""
    folders = [path.absolute().parent for path in images]
    classes: dict[str, int] = {}
    unknown: dict[str, str] = {}
    for folder, path in zip(folders, images):
        if folder.name in classes or folder.name in unknown:
            continue
        try:
            classes[folder.name] = resolve_label(folder.name, labels)
        except ValueError as err:
            unknown[folder.name] = f"folder '{folder.name}' (e.g. {path.as_posix()}): {err}"
    if unknown:
        raise UsageError(unknown_labels("--ground-truth folders: the parent folder of each image must "
                                        "name its class", list(unknown.values())))
    return [classes[folder.name] for folder in folders]


def from_csv(file: Path, images: Sequence[Path], labels: list[str]) -> list[int | None]:
    """Each image's class from the ``path,label`` rows of ``file`` (None for an image without one)."""
    rows = read_csv(file)
    by_file: dict[Path, tuple[int, int]] = {}  # file -> (class, line)
    unknown: list[str] = []
    for line, path, label in rows:
        try:
            cls = resolve_label(label, labels)
        except ValueError as err:
            unknown.append(f"line {line} ({path}): {err}")
            continue
        key = csv_file_key(path, file.parent)
        if key in by_file and by_file[key][0] != cls:
            raise UsageError(f"--ground-truth {file}: '{path}' is labelled twice, differently "
                             f"(lines {by_file[key][1]} and {line})")
        by_file[key] = (cls, line)
    if unknown:
        raise UsageError(unknown_labels(f"--ground-truth {file}: unknown labels", unknown))
    truth = [by_file.get(path.resolve(), (None, 0))[0] for path in images]
    missing = [path for path, cls in zip(images, truth) if cls is None]
    if len(missing) == len(images):
        raise UsageError(f"--ground-truth {file}: none of the {len(images)} images has a row (relative "
                         f"paths are read relative to '{file.parent}', then to the current folder); "
                         f"e.g. '{images[0].as_posix()}' has none")
    if missing:
        print(f"warning: {len(missing)} of {len(images)} images have no row in {file} (e.g. "
              f"{missing[0].as_posix()}); their rows carry no ground truth", file=sys.stderr)
    return truth


def read_csv(file: Path) -> list[tuple[int, str, str]]:
    """``(line number, path, label)`` of each row of a ground-truth CSV (header and blanks skipped)."""
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            records = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UsageError(f"--ground-truth: cannot read '{file}': {err}") from None
    rows = []
    for line, record in enumerate(records, start=1):
        cells = [cell.strip() for cell in record]
        if not any(cells) or (line == 1 and [c.lower() for c in cells] == ["path", "label"]):
            continue
        if len(cells) != 2 or not all(cells):
            raise UsageError(f"--ground-truth {file}: line {line} is not a 'path,label' row: "
                             f"{','.join(record)!r}")
        rows.append((line, cells[0], cells[1]))
    if not rows:
        raise UsageError(f"--ground-truth {file}: no 'path,label' rows")
    return rows


def csv_file_key(path: str, base: Path) -> Path:
    """The file a CSV path names: relative to the CSV's folder, else to the current folder."""
    given = Path(path).expanduser()
    if given.is_absolute():
        return given.resolve()
    beside = base / given
    if beside.exists() or not given.exists():
        return beside.resolve()
    return given.resolve()


def unknown_labels(heading: str, problems: list[str]) -> str:
    """One error message for several unknown labels."""
    listed = "\n  ".join(problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return f"{heading}:\n  {listed}{more}"


# --------------------------------------------------------------------------------------------
# The rows a run will write: one per image and mode (each explained by one task)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedRow:
    """The results row one task will produce: its image file, the image's id, the mode, the true
    class (None: unknown) and the figure's name."""

    path: Path
    image: str          # the image id recorded in results.jsonl
    mode: str
    true_class: int | None
    stem: str           # the figure's name is derived from this path (the mode added when several)


def plan_rows(images: Sequence[Path], ids: Sequence[str], modes: list[str], truth: list[int | None] | None,
              done: Any) -> tuple[list[PlannedRow], int]:
    """The rows still to write (image-major, modes in the order given) and how many are done."""
    planned, skipped = [], 0
    for path, image, cls in zip(images, ids, truth or [None] * len(images)):
        for mode in modes:
            if (image, mode) in done:
                skipped += 1
                continue
            stem = image if len(modes) == 1 else with_mode(image, mode)
            planned.append(PlannedRow(path, image, mode, cls, stem))
    return planned, skipped


def with_mode(image: str, mode: str) -> str:
    """``sub/cat.png`` -> ``sub/cat_mean.png``: figure names distinct per mode."""
    path = Path(image)
    return path.with_name(f"{path.stem}_{mode}{path.suffix}").as_posix()


def task_settings(row: PlannedRow, target: int | str | None) -> tuple[dict[str, Any], bool]:
    """``(options, untargeted_if_predicted)`` of the :class:`~sedc.scale.Task` behind a row."""
    if target == TARGET_TRUE:
        return {"mode": row.mode, "target": row.true_class}, row.true_class is not None
    return {"mode": row.mode, "target": target}, False


def truth_fields(true_class: int | None, original_class: int, labels: list[str]) -> dict[str, Any]:
    """A row's ``true_class``, ``true_label`` and ``correct`` (null without ground truth)."""
    from ..models.labels import class_name

    if true_class is None:
        return {"true_class": None, "true_label": None, "correct": None}
    return {"true_class": true_class, "true_label": class_name(true_class, labels),
            "correct": original_class == true_class}


def accuracy_line(rows: list[dict[str, Any]]) -> str | None:
    """``Accuracy 7/10 (70%) of the labelled images; 3 misclassified ...``, or None without labels."""
    labelled = {row["image"]: row["correct"] for row in rows if row.get("correct") is not None}
    if not labelled:
        return None
    right = sum(labelled.values())
    line = f"Accuracy {right}/{len(labelled)} ({100 * right / len(labelled):.0f}%) of the labelled images"
    toward = {row["image"] for row in rows
              if row.get("correct") is False and row.get("target") == row.get("true_class")}
    if toward:
        line += f"; {len(toward)} misclassified explained toward their true class"
    return line + "."
