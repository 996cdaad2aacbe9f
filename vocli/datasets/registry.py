"""What `vocli fetch` knows: dataset and weight files, their mirrors, sizes and checksums.

Sizes and md5s are the published values of the files (the same ones torchvision
and the darknet tooling check). A file with no known checksum is verified by its
exact size only. Expected split counts let `verify` tell a complete tree from a
half-extracted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vocli.errors import VocliError

OXFORD_2007 = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/"
OXFORD_2012 = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
# host.robots.ox.ac.uk redirects here nowadays; listing it saves a hop when the old name is down.
THOR_2007 = "https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/"
THOR_2012 = "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/"
PJREDDIE = "https://pjreddie.com/media/files/"
PJREDDIE_DATA = "https://data.pjreddie.com/files/"


@dataclass(frozen=True)
class RemoteFile:
    """One file as published: ``filename`` under each mirror base URL."""

    filename: str
    size: int | None
    mirrors: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None

    def urls(self, extra_mirrors: tuple[str, ...] = ()) -> list[str]:
        """Extra mirrors (user's, tried first), then the built-in ones; duplicates dropped."""
        out: list[str] = []
        for base in (*extra_mirrors, *self.mirrors):
            url = base if base.endswith(self.filename) else base.rstrip("/") + "/" + self.filename
            if url not in out:
                out.append(url)
        return out


@dataclass(frozen=True)
class SplitCount:
    """``VOCdevkit/<voc_dir>/ImageSets/Main/<split>.txt`` lists ``images`` ids, each with an XML and a JPEG."""

    voc_dir: str
    split: str
    images: int


@dataclass(frozen=True)
class FolderCount:
    """At least ``files`` files in ``VOCdevkit/<voc_dir>/<folder>`` (other tars may add more)."""

    voc_dir: str
    folder: str
    files: int


@dataclass(frozen=True)
class DatasetSpec:
    """A fetchable name: a VOC tar (extracted under the data root) or a weights file (kept as is)."""

    name: str
    description: str
    files: tuple[RemoteFile, ...]
    kind: str = "dataset"  # "dataset" | "weights" | "group" | "generated"
    splits: tuple[SplitCount, ...] = ()
    folders: tuple[FolderCount, ...] = ()
    members: tuple[str, ...] = ()  # for groups: the names they expand to
    aliases: tuple[str, ...] = field(default=())


VOC2007_TRAINVAL = RemoteFile(
    "VOCtrainval_06-Nov-2007.tar", 460_032_000, (THOR_2007, OXFORD_2007, PJREDDIE, PJREDDIE_DATA),
    md5="c52e279531787c972589f7e41ab4ae64",
)
VOC2007_TEST = RemoteFile(
    "VOCtest_06-Nov-2007.tar", 451_020_800, (THOR_2007, OXFORD_2007, PJREDDIE, PJREDDIE_DATA),
    md5="b6e924de25625d8de591ea690078ad9f",
)
VOC2012_TRAINVAL = RemoteFile(
    "VOCtrainval_11-May-2012.tar", 1_999_639_040, (THOR_2012, OXFORD_2012, PJREDDIE, PJREDDIE_DATA),
    md5="6cd6e144f989b92b3379bac3b3de84fd",
)

_SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        "voc2007", "PASCAL VOC 2007 trainval (detection, 20 classes)", (VOC2007_TRAINVAL,),
        splits=(SplitCount("VOC2007", "train", 2501), SplitCount("VOC2007", "val", 2510),
                SplitCount("VOC2007", "trainval", 5011)),
        folders=(FolderCount("VOC2007", "JPEGImages", 5011), FolderCount("VOC2007", "Annotations", 5011)),
    ),
    DatasetSpec(
        "voc2007-test", "PASCAL VOC 2007 test (the usual evaluation set)", (VOC2007_TEST,),
        splits=(SplitCount("VOC2007", "test", 4952),),
        folders=(FolderCount("VOC2007", "JPEGImages", 4952), FolderCount("VOC2007", "Annotations", 4952)),
    ),
    DatasetSpec(
        "voc2012", "PASCAL VOC 2012 trainval (detection lists: 11,540 images)", (VOC2012_TRAINVAL,),
        splits=(SplitCount("VOC2012", "train", 5717), SplitCount("VOC2012", "val", 5823),
                SplitCount("VOC2012", "trainval", 11540)),
        folders=(FolderCount("VOC2012", "JPEGImages", 17125), FolderCount("VOC2012", "Annotations", 17125)),
    ),
    DatasetSpec(
        "voc0712", "VOC2007 trainval + test and VOC2012 trainval (the 07+12 recipe)", (),
        kind="group", members=("voc2007", "voc2007-test", "voc2012"),
    ),
    DatasetSpec(
        "shapes", "synthetic VOC-layout shapes (generated locally, packed and verified like a download)", (),
        kind="generated",
    ),
    DatasetSpec(
        "yolov3.weights", "Darknet YOLOv3 (COCO, 80 classes)",
        (RemoteFile("yolov3.weights", 248_007_048, (PJREDDIE, PJREDDIE_DATA), md5="c84e5b99d0e52cd466ae710cadf6d84c"),),
        kind="weights", aliases=("yolov3",),
    ),
    DatasetSpec(
        "yolov3-tiny.weights", "Darknet YOLOv3-tiny (COCO, 80 classes)",
        (RemoteFile("yolov3-tiny.weights", 35_434_956, (PJREDDIE, PJREDDIE_DATA), md5="3bcd6b390912c18924b46b26a9e7ff53"),),
        kind="weights", aliases=("yolov3-tiny",),
    ),
    DatasetSpec(
        "darknet53.conv.74", "Darknet-53 backbone (ImageNet), first 74 layers; no published checksum, size-checked",
        (RemoteFile("darknet53.conv.74", 162_482_580, (PJREDDIE, PJREDDIE_DATA)),),
        kind="weights", aliases=("darknet53",),
    ),
)

SHAPES_TAR = "VOCshapes.tar"


def all_specs() -> tuple[DatasetSpec, ...]:
    return _SPECS


def names() -> list[str]:
    return [s.name for s in _SPECS]


def get_spec(name: str) -> DatasetSpec:
    """Look a name (or alias, case-insensitive) up; unknown names list the known ones."""
    key = name.strip().lower()
    for spec in _SPECS:
        if key == spec.name or key in spec.aliases:
            return spec
    raise VocliError(
        f"unknown dataset or file {name!r}",
        hint=f"known: {', '.join(names())}; or pass a URL with --md5/--sha256, or a local tar path",
    )


def is_known(name: str) -> bool:
    key = name.strip().lower()
    return any(key == s.name or key in s.aliases for s in _SPECS)


def expand(names_: list[str] | tuple[str, ...]) -> list[DatasetSpec]:
    """Names -> specs with groups expanded and duplicates dropped, order kept."""
    out: list[DatasetSpec] = []
    for name in names_:
        spec = get_spec(name)
        for member in (spec.members if spec.kind == "group" else (spec.name,)):
            resolved = get_spec(member)
            if resolved not in out:
                out.append(resolved)
    return out


def spec_for_filename(filename: str) -> DatasetSpec | None:
    """The spec publishing a file of this name (to recognise an imported tar), if any."""
    for spec in _SPECS:
        if any(f.filename == filename for f in spec.files):
            return spec
    return None
