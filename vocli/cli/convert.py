"""`vocli convert yolo|coco|voc|ssd`: VOC XML to darknet labels or COCO JSON, back, and to SSD targets."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer
from rich.markup import escape

from vocli.cli.common import (JSON_OPTION, ROOT_OPTION, SETS_OPTION, SKIP_INVALID_OPTION, Col, emit_json,
                              err_console, print_missing_images, print_table, progress_bar, render_invalid,
                              resolve_root)
from vocli.clock import process_seconds

convert_app = typer.Typer(
    help="Convert annotations: VOC to YOLO labels or COCO JSON, YOLO or COCO back to VOC, VOC to SSD targets.\n\n"
         "\b\nExample: vocli convert yolo --sets 2007/train,2007/val,2007/test",
    no_args_is_help=True,
)

OUT_HELP = "Write the outputs here instead of the default place."
WORKERS_OPTION = typer.Option(None, "--workers", min=1, help="Worker processes (default: all cores).")
CLASSES_OPTION = typer.Option(None, "--classes", exists=True, dir_okay=False,
                              help="Class-list file, one name per line (default: the 20 VOC classes).")
DATASET_CLASSES_OPTION = typer.Option(
    None, "--classes", exists=True, dir_okay=False,
    help="Class-list file, one name per line (default: the VOC folder's classes.txt, else the 20 VOC classes).")
DIFFICULT_OPTION = typer.Option(False, "--include-difficult",
                                help="Keep objects marked difficult (dropped by default).")


def register(app: typer.Typer) -> None:
    app.add_typer(convert_app, name="convert")


@contextlib.contextmanager
def _progress(description: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """Adapt the libraries' ``progress(done, total)`` to a rich bar opened on the first call."""
    with contextlib.ExitStack() as stack:
        state = {"advance": None, "done": 0}

        def report(done: int, total: int) -> None:
            if state["advance"] is None:
                state["advance"] = stack.enter_context(progress_bar(description, total, enabled, unit="files"))
            state["advance"](done - state["done"])
            state["done"] = done

        yield report


def _finish(result, json_out: bool, skip_invalid: bool) -> None:
    if json_out:
        emit_json(result)
    render_invalid(result.invalid, skip_invalid)
    if result.invalid and not skip_invalid:
        raise typer.Exit(1)


@convert_app.command("yolo")
def yolo(
    root: Optional[Path] = ROOT_OPTION,
    sets: Optional[str] = SETS_OPTION,
    out: Optional[Path] = typer.Option(None, "--out", help=OUT_HELP + " Lists there; labels in OUT/VOC<year>/labels."),
    classes: Optional[Path] = DATASET_CLASSES_OPTION,
    exact_pixels: bool = typer.Option(False, "--exact-pixels",
                                      help="Geometrically centred boxes instead of darknet voc_label.py numbers."),
    include_difficult: bool = DIFFICULT_OPTION,
    skip_invalid: bool = SKIP_INVALID_OPTION,
    workers: Optional[int] = WORKERS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Write darknet/YOLO labels, image lists, .names and .data from VOC XML.

    \b
    Default numbers match darknet's scripts/voc_label.py exactly:
      cx = ((xmin + xmax)/2 - 1)/W, w = (xmax - xmin)/W  (likewise y, h).
    --exact-pixels: the box runs from xmin - 1 to xmax in 0-based continuous pixels:
      cx = (xmin - 1 + xmax)/2/W,  w = (xmax - xmin + 1)/W.
    Re-running on unchanged annotations only checks file times.

    \b
    Example: vocli convert yolo
    Example: vocli convert yolo --root data --sets shapes/train,shapes/test   (classes from VOCshapes/classes.txt)
    """
    from converters.voc_to_yolo import convert_yolo

    with _progress("labels", not json_out) as report:
        result = convert_yolo(root=resolve_root(root), sets=sets, out=out, classes=classes,
                              exact_pixels=exact_pixels, include_difficult=include_difficult,
                              workers=workers, progress=report)
    result.seconds = process_seconds()  # the whole command, not the library call
    if not json_out:
        console = err_console()
        print_table(f"YOLO labels ({result.convention} convention), lists",
                    [Col("set", "key"), Col("images", "num"), Col("objects", "num"), Col("no\nimage", "num"),
                     Col("list", "path")],
                    [(s.name, s.images, s.objects, s.missing_images, s.list_file) for s in result.sets],
                    root=result.out)
        console.print(f"labels: {result.labels_written} written, {result.labels_unchanged} unchanged, "
                      f"{result.labels_cached} up to date (cached) in {result.seconds:.2f} s")
        console.print(f"data file: {escape(str(result.data_file))}")
        for note in result.notes:
            console.print(f"[yellow]note:[/] {escape(note)}")
        print_missing_images(result.missing_images, result.missing_image_files,
                             "kept in the lists; `vocli train` needs them")
    _finish(result, json_out, skip_invalid)


@convert_app.command("coco")
def coco(
    root: Optional[Path] = ROOT_OPTION,
    sets: Optional[str] = SETS_OPTION,
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for instances_<year>_<split>.json "
                                                           "(default: annotations/ beside VOCdevkit)."),
    classes: Optional[Path] = DATASET_CLASSES_OPTION,
    workers: Optional[int] = WORKERS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Write one COCO instances JSON per VOC set (images, annotations, categories).

    \b
    Boxes: x = xmin - 1, y = ymin - 1, w = xmax - xmin + 1, h = ymax - ymin + 1
    (VOC's 1-based inclusive corners to 0-based continuous pixels; back:
    xmin = x + 1, xmax = x + w). Difficult objects are kept with iscrowd 1, so
    pycocotools leaves them out of the count. Image ids: the VOC id as a number
    (2008_000008 -> 2008000008); category ids 1..C in class-list order.

    \b
    Example: vocli convert coco --sets 2007/trainval,2007/test
    """
    from converters.voc_to_coco import convert_coco

    with _progress("annotations", not json_out) as report:
        result = convert_coco(resolve_root(root), sets=sets, out=out, classes=classes, workers=workers,
                              progress=report)
    if json_out:
        emit_json(result)
        return
    console = err_console()
    print_table(f"COCO instances ({len(result.classes)} categories)",
                [Col("set", "key"), Col("images", "num"), Col("objects", "num"), Col("difficult\n(iscrowd)", "num"),
                 Col("file", "path")],
                [(f.set, f.images, f.objects, f.difficult, f.path) for f in result.files], root=result.out)
    console.print(f"done in {result.seconds:.2f} s")


@convert_app.command("voc")
def voc(
    images: Optional[Path] = typer.Argument(None, help="Image folder, or a list file of image paths."),
    from_coco: Optional[Path] = typer.Option(None, "--from-coco", exists=True, dir_okay=False,
                                             help="Read this COCO instances JSON instead of YOLO labels."),
    coco_images: Optional[Path] = typer.Option(None, "--images", help="With --from-coco: the folder its "
                                                                      "file_name entries are in (or give IMAGES)."),
    out: Optional[Path] = typer.Option(None, "--out", help="The VOC<name> folder to write (default: the folder "
                                                           "holding IMAGES when that is a JPEGImages folder)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Folder of <stem>.txt labels (default: swap "
                                                                 "JPEGImages/images for labels in each image path)."),
    classes: Optional[Path] = CLASSES_OPTION,
    split: str = typer.Option("train", "--split", help="Name of the ImageSets/Main list to write."),
    exact_pixels: bool = typer.Option(False, "--exact-pixels", help="Labels use the --exact-pixels convention."),
    copy_images: bool = typer.Option(False, "--copy-images",
                                     help="Copy images into OUT/JPEGImages (default: symlink)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace existing annotations and split list with other content."),
    skip_invalid: bool = SKIP_INVALID_OPTION,
    workers: Optional[int] = WORKERS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Write VOC XML annotations from YOLO label files and images (sizes read from image headers),
    or from a COCO instances JSON (--from-coco; iscrowd objects come back difficult).

    \b
    Example: vocli convert voc mydata/images --out data/VOCdevkit/VOCmine --classes mine.names
    Example: vocli convert voc --from-coco instances_val.json --images val2017 --out data/VOCdevkit/VOCval
    """
    from converters.yolo_to_voc import convert_voc

    if from_coco is not None:
        _voc_from_coco(from_coco, coco_images or images, out, split, copy_images, overwrite, json_out)
        return
    if images is None:
        raise typer.BadParameter("give the IMAGES folder (or --from-coco FILE --images DIR)", param_hint="IMAGES")

    with _progress("annotations", not json_out) as report:
        result = convert_voc(images, out=out, classes=classes, split=split, labels=labels,
                             exact_pixels=exact_pixels, copy_images=copy_images, overwrite=overwrite,
                             workers=workers, progress=report)
    result.seconds = process_seconds()  # the whole command, not the library call
    if not json_out:
        err_console().print(
            f"{result.images} images, {result.objects} objects -> {escape(str(result.out))} "
            f"({result.annotations_written} written, {result.annotations_unchanged} unchanged; "
            f"list {escape(str(result.split_file))}) in {result.seconds:.2f} s")
    _finish(result, json_out, skip_invalid)


def _voc_from_coco(instances: Path, images: Optional[Path], out, split, copy_images, overwrite, json_out) -> None:
    from converters.coco_to_voc import convert_voc_from_coco

    if images is None:
        raise typer.BadParameter("--from-coco needs --images DIR (the folder of its file_name entries)",
                                 param_hint="--images")
    with _progress("annotations", not json_out) as report:
        result = convert_voc_from_coco(instances, images, out=out, split=split, copy_images=copy_images,
                                       overwrite=overwrite, progress=report)
    if json_out:
        emit_json(result)
        return
    err_console().print(
        f"{result.images} images, {result.objects} objects ({result.difficult} difficult) -> "
        f"{escape(str(result.out))} ({result.annotations_written} written, {result.annotations_unchanged} "
        f"unchanged; list {escape(str(result.split_file))}) in {result.seconds:.2f} s")
    if result.missing_images:
        err_console().print(f"[yellow]note:[/] {len(result.missing_images)} image(s) not found, annotations "
                            f"written without them, e.g. {escape(result.missing_images[0])}")


@convert_app.command("ssd")
def ssd(
    root: Optional[Path] = ROOT_OPTION,
    sets: Optional[str] = SETS_OPTION,
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for <year>_<split>.h5 (default: ssd<size>/ "
                                                           "beside VOCdevkit)."),
    size: int = typer.Option(300, "--size", help="SSD input size: 300 (8,732 priors) or 512 (24,564)."),
    threshold: float = typer.Option(0.5, "--threshold", help="IoU at or above which a prior is positive."),
    classes: Optional[Path] = DATASET_CLASSES_OPTION,
    include_difficult: bool = DIFFICULT_OPTION,
    compression: str = typer.Option("gzip", "--compression", help="HDF5 compression: gzip, lzf or none."),
    skip_invalid: bool = SKIP_INVALID_OPTION,
    workers: Optional[int] = WORKERS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Match VOC boxes to SSD default boxes and write encoded targets, one HDF5 file per set.

    \b
    Priors, matching and (0.1, 0.2) variance encoding as the SSD paper / ssd.pytorch.
    Read back with converters.ssd_targets.open_targets(path), indexed by image (torch tensors).

    \b
    Example: vocli convert ssd --sets 2007/trainval,2012/trainval,2007/test
    """
    from converters.ssd_targets import build_ssd_targets

    with _progress("images", not json_out) as report:
        result = build_ssd_targets(root=resolve_root(root), sets=sets, out=out, size=size, threshold=threshold,
                                   classes=classes, include_difficult=include_difficult,
                                   compression=compression, workers=workers, progress=report)
    result.seconds = process_seconds()  # the whole command, not the library call
    if not json_out:
        console = err_console()
        print_table(f"SSD{result.size} targets ({result.num_priors} priors)",
                    [Col("set", "key"), Col("images", "num"), Col("objects", "num"), Col("positives\n/image", "num"),
                     Col("KB\n/image", "num"), Col("file", "path")],
                    [(f.set, f.images, f.objects, f"{f.positives_per_image:.1f}", f"{f.bytes_per_image / 1024:.1f}",
                      f.path) for f in result.files], root=result.out)
        console.print(f"done in {result.seconds:.2f} s")
    _finish(result, json_out, skip_invalid)
