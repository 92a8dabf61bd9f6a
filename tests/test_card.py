"""`python -m nadlib card`: the signature card of a user's architecture, at smoke size, from a temporary folder."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pytest

import nadlib
from nadlib.cli import main

MODELS = textwrap.dedent('''
    import torch
    from torch import nn

    class StrideGAPNet(nn.Module):  # a 5x5 stride-2 stem and global average pooling
        def __init__(self, num_classes=1, width=8):
            super().__init__()
            self.stem = nn.Conv2d(1, width, 5, stride=2)
            self.head = nn.Linear(width, num_classes)

        def forward(self, x):
            return self.head(torch.relu(self.stem(x)).mean((2, 3)))

    class TinyMixer(nn.Module):  # 4x4 patches as 64 tokens, a token-mixing and a channel-mixing GELU MLP
        def __init__(self, num_classes=1, width=8):
            super().__init__()
            self.patch = nn.Conv2d(1, width, 4, stride=4)
            self.tokens = nn.Linear(64, 64)
            self.channels = nn.Linear(width, width)
            self.head = nn.Linear(width, num_classes)

        def forward(self, x):
            t = self.patch(x).flatten(2)                       # N x width x 64
            t = t + nn.functional.gelu(self.tokens(t))          # mix the tokens
            t = t.transpose(1, 2)                              # N x 64 x width
            t = t + nn.functional.gelu(self.channels(t))        # mix the channels
            return self.head(t.mean(1))

    class NoClasses(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1024, 1)

        def forward(self, x):
            return self.fc(x.flatten(1))
''')


@pytest.fixture
def folder(tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    import sys
    sys.modules.pop("mymodels", None)
    yield tmp_path
    sys.modules.pop("mymodels", None)


def _card(folder, spec, *extra):
    out = folder / spec.split(":")[-1].lower()
    assert main(["card", spec, *extra, "--profile", "smoke", "--device", "cpu", "--out-dir", str(out)]) == 0
    return out


@pytest.mark.parametrize("spec", ["mymodels:StrideGAPNet", "mymodels:TinyMixer"])
def test_a_card_of_a_user_model(folder, spec, capsys):
    out = _card(folder, spec, "--arch-kwargs", '{"width": 4}')
    page = (out / "card.html").read_text()
    assert f"wrote {out / 'card.html'}" in capsys.readouterr().out
    name = spec.split(":")[1]
    assert f"<h1>Signature card: {name}</h1>" in page
    sections = re.findall(r"<h2>(.*?)</h2>", page)
    assert sections == ["1. Neural anisotropy directions", "2. Trainability over Fourier directions",
                        "3. Trainability against the NAD index", "4. Non-linearity signature", "5. Neural collapse",
                        "Provenance"]
    assert page.count("src='data:image/png;base64,") == 5 and "the book's bundled results" in page
    assert page.count(" s on cpu</p>") == 5  # each section states its time and device
    arrays, meta = nadlib.load_artifact(out / "card.npz")
    assert meta["profile"] == "smoke" and meta["model"].startswith(f"{name} #") and meta["device"] == "cpu"
    assert arrays["nad_eigenvalues"].shape == (1024,) and arrays["trainability_indices"].tolist() == [0, 4, 16]
    assert ((arrays["grid_accuracy"] >= 0) & (arrays["grid_accuracy"] <= 1)).all()
    assert np.isfinite(arrays["signature_rho"]).all() and len(arrays["collapse_epoch"]) == 3  # epochs 0, 1, 2
    assert arrays["nad_stability_k"].tolist() == [1, 5, 10, 50]
    assert ((arrays["nad_stability"] >= 0) & (arrays["nad_stability"] <= 1)).all()


def test_a_card_from_python_under_its_own_name_shown_inline(tmp_path):
    """Chapter 6's path (a constructor defined in a notebook, a name for the page, the card read back and embedded
    in an inline frame) without a second full card: the name is checked before any work, and the frame is tested
    on a page of the same form.  Chapter 6 itself runs the whole path under nbval."""
    from torch import nn

    from nadlib.book.card import card_frame, load_card, signature_card

    make = lambda k: nn.Sequential(nn.Flatten(), nn.Linear(1024, k))  # noqa: E731
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        signature_card(make, tmp_path / "bad", profile="smoke", name=" ")
    assert not (tmp_path / "bad").exists()
    page = tmp_path / "card" / "card.html"
    page.parent.mkdir()
    page.write_text("<!DOCTYPE html><html><body><h1>Signature card: StrideGAP</h1>\"quoted\" & more</body></html>")
    nadlib.save_artifact(page.with_name("card.npz"), {"nad_stability": np.array([0.5])}, {"model": "StrideGAP #00"})
    arrays, meta = load_card(page)
    assert meta["model"] == "StrideGAP #00" and arrays["nad_stability"].tolist() == [0.5]
    frame = card_frame(page, height=700).data
    assert frame.startswith("<div><iframe") and "height:700px" in frame
    assert "srcdoc=\"&lt;!DOCTYPE html&gt;&lt;html&gt;&lt;body&gt;&lt;h1&gt;Signature card: StrideGAP" in frame
    assert "&quot;quoted&quot; &amp; more" in frame and "<h1>" not in frame  # escaped into srcdoc, not spliced in
    with pytest.raises(ValueError, match="not a card page"):
        card_frame(page.with_name("card.npz"))


def test_a_class_without_num_classes_is_refused_before_any_work(folder, capsys):
    assert main(["card", "mymodels:NoClasses", "--profile", "smoke", "--out-dir", str(folder / "x")]) == 2
    assert "does not take num_classes" in capsys.readouterr().err and not (folder / "x").exists()


def test_the_card_page_opens_in_a_browser(folder):
    from browser import chromium_or_skip, headless_chromium

    chromium, sync_api = chromium_or_skip("the signature card")
    out = _card(folder, "mymodels:TinyMixer", "--arch-kwargs", '{"width": 4}')  # a user's model, as the issue asks
    with headless_chromium(sync_api, chromium) as browser:
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "card.html").as_uri())
        widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert not errors and len(widths) == 5 and min(widths) > 100, (errors, widths)
