"""The per-chapter table of what the book shows for each of the paper's five networks (nadlib.book.coverage)."""

from __future__ import annotations

import numpy as np
import pytest

from nadlib import catalogue
from nadlib.book import coverage as C
from nadlib.results import bundled_path, load_artifact

CHAPTERS = sorted({c for e in catalogue.ENTRIES for c in e.chapters})


def test_describe_nads_on_a_gpu():
    meta = {"n_networks": 568, "device": "cuda", "device_name": "NVIDIA H200", "method": "secant"}
    assert C.describe_artifact({}, meta) == "568 networks, NVIDIA H200"


def test_describe_grid_on_the_cpu():
    arrays = {"freqs": np.zeros((130, 2)), "accuracy": np.zeros(130)}
    meta = {"n_train": 10_000, "n_test": 2_000, "epochs": 20, "device": "cpu", "device_name": None}
    assert C.describe_artifact(arrays, meta) == "130 directions, 10,000/2,000 samples, 20 epochs, CPU"


def test_describe_flip_trained_to_a_training_accuracy():
    arrays = {"variants": np.array(["original", "flipped"]), "epochs": np.array([50, 400])}
    meta = {"settings": {"n_train": 1000, "n_test": 2000, "epochs": 50, "until_train_acc": 0.99},
            "data_source": "CIFAR-10 from a local .npz (x.npz)", "device": "cpu"}
    assert C.describe_artifact(arrays, meta) == ("1,000/2,000 samples, trained to train acc. 0.99 (50/400 epochs), "
                                                 "real CIFAR-10, CPU")


def test_describe_synthetic_stand_in_images_as_such():
    meta = {"settings": {"n_train": 200, "n_test": 100, "epochs": 2}, "device": "cpu",
            "data_source": "synthetic stand-in images (nadlib.synthetic_cifar10, seed 0), NOT CIFAR-10"}
    assert C.describe_artifact({}, meta) == "200/100 samples, 2 epochs, synthetic stand-in images, CPU"


def test_describe_a_partial_ablation():
    arrays = {"names": np.array(["a", "b"]), "test_acc": np.array([[0.5, 0.6], [np.nan, np.nan]])}
    assert C.describe_artifact(arrays, {"device": "cpu"}) == "2 settings x 2 directions, 2 of 4 runs done, CPU"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_names_all_five_networks(chapter):
    table = str(C.coverage_table(chapter))
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| network")]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows] == ["LogReg", "LeNet", "VGG-11", "ResNet-18", "DenseNet-121"]
    for row in rows:
        ours = row.split(" | ")[1]
        assert ours.strip() not in ("", "–")  # always says what is shown, or why nothing is


def test_every_artifact_a_chapter_names_exists_and_loads():
    """The table is built from the catalogue entries the chapters show: each bundled file must be in results/
    (or the download registry) and pass its checksum."""
    names = {e.bundled for e in catalogue.ENTRIES if e.chapters and e.bundled}
    assert len(names) >= 25
    for name in sorted(names):
        arrays, meta = load_artifact(bundled_path(name, download=False))
        assert arrays, name


def test_absent_networks_say_why():
    table = str(C.coverage_table(3))
    assert "| LogReg | not in the book's CIFAR-10 experiments |" in table
    assert "| VGG-11 | not computed: needs a GPU" in table
    with pytest.raises(ValueError, match="chapter"):
        C.coverage_table(7)
