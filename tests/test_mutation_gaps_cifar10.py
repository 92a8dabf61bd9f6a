"""Fast exact tests of `nadlib/cifar10.py`'s stand-in data and conversions (issue 20, `tests/MUTANTS.md`):
`default_cifar10_root`, `_as_tensors`, `_smooth_fields`, `synthetic_cifar10` and `cifar_data`.

Before these, only the 13-s flip claims of `tests/test_claims.py` and a few statistics reached these functions, so a
mutation run could not score their mutants in reasonable time.  Every expected value here follows from the
docstrings (the Gaussian filter of `_smooth_fields` frequency by frequency, the formula
`clip(0.5 + signal T_k + noise B_i, 0, 1)` quantised to uint8, the default folder) on tiny inputs, never from
a run of the code.  Each test takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import nadlib.cifar10 as C


# --------------------------------------------------------------------------------------------------
# default_cifar10_root
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (None, "HOME/.cache/nadlib/cifar10"),          # unset: the user's cache folder
    ("", "HOME/.cache/nadlib/cifar10"),            # empty or blank: as unset
    ("  \t ", "HOME/.cache/nadlib/cifar10"),
    ("/srv/data", "/srv/data/cifar10"),
    ("  /srv/data \n", "/srv/data/cifar10"),       # surrounding blanks are not part of the folder
    ("~/big", "HOME/big/cifar10"),                 # ~ is the home folder
], ids=["unset", "empty", "blank", "absolute", "padded", "tilde"])
def test_default_cifar10_root(value, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    if value is None:
        monkeypatch.delenv(C.DATA_ENV, raising=False)
    else:
        monkeypatch.setenv(C.DATA_ENV, value)
    root = C.default_cifar10_root()
    assert isinstance(root, Path) and root == Path(expected.replace("HOME", str(tmp_path)))


# --------------------------------------------------------------------------------------------------
# _as_tensors
# --------------------------------------------------------------------------------------------------

def test_as_tensors_converts_every_byte_and_moves_the_channel_axis():
    """Image n, row r, column c, channel ch holds (7 n + 3 r + 5 c + 11 ch) mod 256 (every byte value occurs): the
    tensor holds it at [n, ch, r, c] divided by 255 in float32; 0 -> 0, 255 -> 1 and 51 -> 0.2 exactly as
    float32 division gives them.  Rows and columns differ in number so that they cannot be swapped."""
    n, h, w = 3, 4, 6
    i, r, c, ch = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    images = ((7 * i + 3 * r + 5 * c + 11 * ch) % 256).astype(np.uint8)
    labels = np.array([9, 0, 4], np.uint8)
    x, y = C._as_tensors(images, labels, "cpu")
    assert x.shape == (n, 3, h, w) and x.dtype == torch.float32 and x.is_contiguous() and x.device.type == "cpu"
    for k in range(n):
        for ch_ in range(3):
            want = (7 * k + 3 * np.arange(h)[:, None] + 5 * np.arange(w)[None, :] + 11 * ch_) % 256
            assert torch.equal(x[k, ch_], torch.from_numpy(want.astype(np.float32) / np.float32(255)))
    assert y.dtype == torch.int64 and y.tolist() == [9, 0, 4] and y.device.type == "cpu"
    full = np.arange(256, dtype=np.uint8).reshape(1, 1, 256, 1).repeat(3, axis=3)
    values = C._as_tensors(full, [1], "cpu")[0][0, 0, 0]
    assert float(values[0]) == 0.0 and float(values[255]) == 1.0
    assert float(values[51]) == float(np.float32(0.2)) and bool((values.diff() > 0).all())


def test_as_tensors_accepts_views_and_label_lists():
    """A non-contiguous view (every second image, columns reversed) gives the same tensor as its copy; labels may be
    a list of ints."""
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    view = images[::2, :, ::-1]
    assert not view.flags.c_contiguous
    x, y = C._as_tensors(view, [3, 7], torch.device("cpu"))
    assert torch.equal(x, C._as_tensors(view.copy(), np.array([3, 7]), "cpu")[0]) and x.is_contiguous()
    assert torch.equal(x[1, 2, 5, 0], torch.tensor(images[2, 5, 31, 2] / np.float32(255), dtype=torch.float32))
    assert y.dtype == torch.int64 and y.tolist() == [3, 7]


# --------------------------------------------------------------------------------------------------
# _smooth_fields
# --------------------------------------------------------------------------------------------------

def _spectrum_ratio(out: torch.Tensor, noise: torch.Tensor):
    """fft2(out) / fft2(noise) at the integer frequencies (u, v) != (0, 0) with u^2 + v^2 <= 36, and their radii^2."""
    f = torch.fft.fftfreq(32, d=1 / 32, dtype=torch.float64)
    r2 = f[:, None] ** 2 + f[None, :] ** 2
    keep = (r2 > 0) & (r2 <= 36)
    return (torch.fft.fft2(out) / torch.fft.fft2(noise))[..., keep], r2[keep]


@pytest.mark.parametrize("cutoff", [2.0, 3.0])
def test_smooth_fields_are_gaussian_filtered_noise_of_unit_std(cutoff):
    """The fields are the generator's first standard normal draw (n x 3 x 32 x 32, float64), multiplied in
    frequency space by exp(-r^2 / (2 cutoff^2)) (r the integer frequency radius), made mean-free per channel and
    divided by one number per image: so fft2(field) / fft2(noise) is, at every frequency but 0, that Gaussian
    times one positive real factor per image, whatever the channel; each image has mean 0 per channel and
    (unbiased) standard deviation 1 over its 3 x 32 x 32 values, while its channels alone do not."""
    n = 3
    gen = torch.Generator().manual_seed(11)
    out = C._smooth_fields(n, gen, cutoff)
    assert out.shape == (n, 3, 32, 32) and out.dtype == torch.float64
    noise = torch.randn((n, 3, 32, 32), generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    ratio, r2 = _spectrum_ratio(out, noise)
    scale = ratio / torch.exp(-r2 / (2 * cutoff ** 2))              # (n, 3, frequencies)
    per_image = scale[:, 0, :1].real                                 # the first frequency of channel 0
    assert bool((per_image > 0).all())
    torch.testing.assert_close(scale, per_image[:, :, None].expand_as(scale).to(scale.dtype), rtol=1e-9, atol=0)
    assert float(out.mean(dim=(-2, -1)).abs().max()) < 1e-12
    torch.testing.assert_close(out.std(dim=(-3, -2, -1)), torch.ones(n, dtype=torch.float64), rtol=1e-12, atol=0)
    assert float((out.std(dim=(-2, -1)) - 1).abs().max()) > 0.01    # not normalised channel by channel
    assert float((out[0] - out[1]).abs().max()) > 0.1                 # the images differ


def test_smooth_fields_follow_the_generator():
    first, second = (C._smooth_fields(2, g, 2.0) for g in (torch.Generator().manual_seed(4),) * 2)
    assert not torch.equal(first, second)  # the second call draws on from the same generator
    assert torch.equal(first, C._smooth_fields(2, torch.Generator().manual_seed(4), 2.0))


# --------------------------------------------------------------------------------------------------
# synthetic_cifar10
# --------------------------------------------------------------------------------------------------

def test_synthetic_images_without_signal_and_noise_are_one_half():
    """signal = noise = 0: every pixel is 0.5 * 255 = 127.5, rounded half to even: 128."""
    d = C.synthetic_cifar10(n_train=10, n_test=20, seed=3, signal=0.0, noise=0.0)
    assert sorted(d) == ["x_test", "x_train", "y_test", "y_train"]
    assert d["x_train"].shape == (10, 32, 32, 3) and d["x_test"].shape == (20, 32, 32, 3)
    assert (d["x_train"] == 128).all() and (d["x_test"] == 128).all()
    assert d["y_train"].dtype == np.uint8 and sorted(d["y_train"].tolist()) == list(range(10))


def test_synthetic_images_add_template_and_background_then_round():
    """The same seed draws the same templates T_k, labels and backgrounds B_i whatever signal and noise are, so with
    no clipping  x(s, n) = round(255 (0.5 + s T + n B))  and  x(s, 0) + x(0, n) - 127.5  differ by at most the
    three roundings (1.5), and x(s, 0) is the same image for one class, 127.5 +- 255 s T_k."""
    both = C.synthetic_cifar10(n_train=20, n_test=10, seed=8, signal=0.05, noise=0.04)
    signal = C.synthetic_cifar10(n_train=20, n_test=10, seed=8, signal=0.05, noise=0.0)
    noise = C.synthetic_cifar10(n_train=20, n_test=10, seed=8, signal=0.0, noise=0.04)
    for split in ("train", "test"):
        x, y = both[f"x_{split}"].astype(np.float64), both[f"y_{split}"]
        assert (y == signal[f"y_{split}"]).all() and (y == noise[f"y_{split}"]).all()
        assert x.min() > 0 and x.max() < 255                          # nothing clipped at these amplitudes
        rest = x - signal[f"x_{split}"] - noise[f"x_{split}"] + 127.5
        assert np.abs(rest).max() <= 1.5 and np.abs(rest).mean() < 1.0
    # doubling the signal doubles the template's offset from 127.5 (up to the two roundings)
    twice = C.synthetic_cifar10(n_train=20, n_test=10, seed=8, signal=0.1, noise=0.0)["x_train"].astype(np.float64)
    once = signal["x_train"].astype(np.float64)
    assert np.abs((twice - 127.5) - 2 * (once - 127.5)).max() <= 1.5
    assert np.abs(once - 127.5).max() > 20                            # a template is no constant


def test_synthetic_images_are_clipped_to_the_byte_range():
    """A huge signal (100 T_k) pushes the pixels to 0 or 255 (clip to [0, 1] before quantising), both occurring: all
    but those where |T_k| < 0.005, a thin band around the zero crossings of the smooth template (a few in a
    thousand); without the clip the bytes would wrap around."""
    x = C.synthetic_cifar10(n_train=10, n_test=10, seed=1, signal=100.0, noise=0.0)["x_train"]
    assert x.dtype == np.uint8 and (x == 0).any() and (x == 255).any()
    assert ((x == 0) | (x == 255)).mean() > 0.95


def test_synthetic_defaults_and_seed():
    """500 training and 200 test images by default, seed 0, signal 0.06 and noise 0.16."""
    d = C.synthetic_cifar10()
    assert d["x_train"].shape == (500, 32, 32, 3) and d["x_test"].shape == (200, 32, 32, 3)
    assert np.bincount(d["y_train"]).tolist() == [50] * 10 and np.bincount(d["y_test"]).tolist() == [20] * 10
    same = C.synthetic_cifar10(500, 200, seed=0, signal=0.06, noise=0.16)
    assert all(np.array_equal(d[k], same[k]) for k in d)
    assert not np.array_equal(C.synthetic_cifar10(500, 200, seed=1)["x_train"], d["x_train"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_train=9), r"^n_train must be an int >= 10 \(one image per class\), got 9$"),
    (dict(n_train=10.0), r"^n_train must be an int >= 10 \(one image per class\), got 10\.0$"),
    (dict(n_train=True), r"^n_train must be an int >= 10 \(one image per class\), got True$"),
    (dict(n_test="20"), r"^n_test must be an int >= 10 \(one image per class\), got '20'$"),
    (dict(n_test=-5), r"^n_test must be an int >= 10 \(one image per class\), got -5$"),
], ids=["nine", "float", "bool", "string", "negative"])
def test_synthetic_sizes_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        C.synthetic_cifar10(**{"n_train": 10, "n_test": 10, **kwargs})


def test_synthetic_memory_check_names_the_larger_split(monkeypatch):
    """The memory check runs first, for 4 float32 copies of the larger split: 16 bytes per value of 3 x 32 x 32."""
    seen = []

    class Stop(Exception):
        pass

    def check(nbytes, what, hint):
        seen.append((nbytes, what, hint))
        raise Stop

    monkeypatch.setattr(C, "fits_in_memory", check)
    for n_train, n_test, larger, text in ((1_000, 2_500, 2_500, "n_train=1,000, n_test=2,500"),
                                          (40_000, 10, 40_000, "n_train=40,000, n_test=10")):
        with pytest.raises(Stop):
            C.synthetic_cifar10(n_train, n_test)
        assert seen[-1] == (larger * 3 * 32 * 32 * 16, f"synthetic_cifar10 with {text}", "ask for fewer images")
    with pytest.raises(Stop):
        C.synthetic_cifar10(np.int64(10), 10)  # a numpy integer is an int


# --------------------------------------------------------------------------------------------------
# cifar_data
# --------------------------------------------------------------------------------------------------

def test_cifar_data_synthetic_tensors(monkeypatch):
    """The stand-in images as float32 tensors in [0, 1] (the bytes / 255), int64 labels, balanced training and
    test sets of the sizes asked for, the seed passed on."""
    d = C.cifar_data(n_train=20, n_test=30, synthetic=True, seed=5, device="cpu")
    raw = C.synthetic_cifar10(20, 30, seed=5)
    assert d["x_train"].shape == (20, 3, 32, 32) and d["x_train"].dtype == torch.float32
    assert d["x_test"].shape == (30, 3, 32, 32) and d["y_test"].dtype == torch.int64
    assert torch.equal(d["x_test"][4, 2], torch.from_numpy(raw["x_test"][4, :, :, 2].astype(np.float32) / np.float32(255)))
    assert d["y_train"].tolist() == raw["y_train"].tolist() and d["y_test"].tolist() == raw["y_test"].tolist()
    assert (d["n_train"], d["n_test"]) == (20, 30)
    assert set(d) == {"x_train", "y_train", "x_test", "y_test", "source", "n_train", "n_test"}


@pytest.mark.parametrize("synthetic", ["yes", 1.5, "AUTO"])
def test_cifar_data_refuses_other_synthetic_values(synthetic):
    with pytest.raises(ValueError, match=rf"^synthetic must be None, True, False or 'auto', got {re_repr(synthetic)}$"):
        C.cifar_data(n_train=10, n_test=10, synthetic=synthetic, device="cpu")


def re_repr(value) -> str:
    import re
    return re.escape(repr(value))


@pytest.mark.parametrize("name", ["n_train", "n_test"])
@pytest.mark.parametrize("value", [0, -3, 2.5])
def test_cifar_data_sizes_are_positive_ints(name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be a positive int, got {re_repr(value)}$"):
        C.cifar_data(synthetic=True, device="cpu", **{name: value})


def test_cifar_data_takes_the_sizes_of_the_profile_it_is_given():
    import nadlib
    profile = nadlib.get_profile("smoke")
    d = C.cifar_data(profile, synthetic=True, device="cpu")
    assert (d["n_train"], d["n_test"]) == (profile.cifar.n_train, profile.cifar.n_test)
    assert d["x_train"].shape[0] == profile.cifar.n_train


def test_cifar_data_names_the_npz_of_the_environment_and_the_default_folder(tmp_path, monkeypatch):
    """Without `npz`, $NADLIB_CIFAR10_NPZ (blanks stripped) is read and named; without it and without `root`, the
    torchvision source names the default folder ($NADLIB_DATA/cifar10)."""
    arrays = {"x_train": np.full((20, 32, 32, 3), 7, np.uint8), "y_train": np.arange(20) % 10,
              "x_test": np.full((10, 32, 32, 3), 9, np.uint8), "y_test": np.arange(10) % 10}
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    C.clear_cifar10_cache()
    monkeypatch.setenv(C.NPZ_ENV, f"  {path} ")
    d = C.cifar_data(n_train=10, n_test=10, device="cpu")
    assert d["source"] == "CIFAR-10 from a local .npz (mine.npz)"
    assert round(float(d["x_train"].max()) * 255) == 7 and round(float(d["x_test"].max()) * 255) == 9
    assert d["y_train"].tolist() == list(range(10))
    monkeypatch.setenv(C.NPZ_ENV, "   ")
    monkeypatch.setenv(C.DATA_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(C, "_read_torchvision",
                        lambda root, train, download: (arrays["x_train"], arrays["y_train"]))
    C.clear_cifar10_cache()
    d = C.cifar_data(n_train=10, n_test=10, device="cpu")
    assert d["source"] == f"CIFAR-10 via torchvision ({tmp_path / 'cache' / 'cifar10'})"
    C.clear_cifar10_cache()


def test_cifar_data_auto_tries_the_real_data_with_every_argument_then_the_stand_in(monkeypatch):
    """synthetic='auto' first asks for the real data exactly as synthetic=None would (root, download, device, npz
    passed on, both splits); when that is missing, the stand-in images of the given seed."""
    calls = []
    x = torch.zeros(20, 3, 32, 32)
    y = torch.arange(20) % 10

    def real(root, train, download, device, npz):
        calls.append((root, train, download, device, npz))
        return x, y

    monkeypatch.setattr(C, "load_cifar10", real)
    monkeypatch.delenv(C.NPZ_ENV, raising=False)
    d = C.cifar_data(n_train=10, n_test=10, root="/data/here", download=False, synthetic="auto", seed=3, device="cpu")
    cpu = torch.device("cpu")
    assert calls == [("/data/here", True, False, cpu, None), ("/data/here", False, False, cpu, None)]
    assert d["source"] == "CIFAR-10 via torchvision (/data/here)" and d["n_train"] == 10

    def missing(*args):
        calls.append(args)
        raise C.CIFAR10NotFoundError("not here")

    calls.clear()
    monkeypatch.setattr(C, "load_cifar10", missing)
    d = C.cifar_data(n_train=10, n_test=10, root="/data/here", download=True, synthetic="auto", seed=3, device="cpu")
    assert calls == [("/data/here", True, True, cpu, None)]
    assert d["source"] == "synthetic stand-in images (nadlib.synthetic_cifar10, seed 3), NOT CIFAR-10"
    assert torch.equal(d["x_train"], C.cifar_data(n_train=10, n_test=10, synthetic=True, seed=3, device="cpu")["x_train"])


def test_synthetic_images_are_the_seeds_first_templates_added_to_one_half():
    """Without background, an image of class k is round(255 (0.5 + s T_k)) with T the first 10 smooth fields
    (cutoff 2) drawn from the seed's generator: the template is added, not subtracted."""
    d = C.synthetic_cifar10(n_train=20, n_test=10, seed=4, signal=0.05, noise=0.0)
    templates = C._smooth_fields(10, torch.Generator().manual_seed(4), cutoff=2.0)
    want = (((0.5 + 0.05 * templates).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)).numpy()
    for split in ("train", "test"):
        assert np.array_equal(d[f"x_{split}"], want[d[f"y_{split}"].astype(np.int64)])


def test_an_npz_with_other_entries_reads_only_the_four_arrays(tmp_path):
    """Extra entries of a CIFAR-10 .npz are not read at all: not even one that only a pickle could load."""
    path = tmp_path / "extra.npz"
    np.savez(path, x_train=np.zeros((10, 32, 32, 3), np.uint8), y_train=np.arange(10), notes=np.array([{"a": 1}]),
             x_test=np.ones((10, 32, 32, 3), np.uint8), y_test=np.arange(10))
    x, y = C._read_npz(path, train=False)
    assert (x == 1).all() and y.tolist() == list(range(10))


def test_without_torchvision_the_message_says_how_to_install_it(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)  # `from torchvision.datasets import` fails
    with pytest.raises(C.CIFAR10NotFoundError) as err:
        C._read_torchvision(tmp_path, True, False)
    assert str(err.value) == C._missing_message(tmp_path, "torchvision is not installed (pip install torchvision)")
    assert str(err.value).startswith("CIFAR-10 is not available: torchvision is not installed (pip install "
                                     "torchvision)\n") and str(tmp_path) in str(err.value)
