import pytest
import torch
from torch import nn

import nadlib
from nadlib import ARCHITECTURES, get_model

CHEAP = [a for a in ARCHITECTURES if not a.startswith(("densenet121", "vgg11_nopool", "resnet18_nopool"))]


def test_registry_lists_all_families_and_nopool_variants():
    for name in ("logreg", "lenet", "vgg11", "resnet18", "densenet121"):
        assert name in ARCHITECTURES
        if name != "logreg":
            assert f"{name}_nopool" in ARCHITECTURES


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_output_shape(name):
    torch.manual_seed(0)
    model = get_model(name, in_channels=3, num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("name", CHEAP)
def test_one_channel_one_output(name):
    model = get_model(name, in_channels=1, num_classes=1).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 1, 32, 32)).shape == (3, 1)


@pytest.mark.parametrize("name", ["lenet", "vgg11", "resnet18", "densenet121"])
def test_nopool_variant_has_no_downsampling(name):
    pooled, free = get_model(name), get_model(f"{name}_nopool")
    pools = (nn.MaxPool2d, nn.AvgPool2d)
    assert not any(isinstance(m, pools) for m in free.modules())
    assert all(m.stride in ((1, 1), 1) for m in free.modules() if isinstance(m, nn.Conv2d))
    last_in = lambda m: [l for l in m.modules() if isinstance(l, nn.Linear)][-1 if name != "lenet" else 0].in_features
    assert last_in(free) > last_in(pooled)  # the lost down-sampling goes into a larger linear layer


def test_default_initialisation_is_pytorch_default():
    torch.manual_seed(0)
    model = get_model("lenet")
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 6, 5)
    assert torch.equal(model.features[0].weight, conv.weight)


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = get_model("resnet18")
    torch.manual_seed(3)
    b = get_model("resnet18")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_bad_names_and_sizes():
    with pytest.raises(ValueError, match="known: logreg, lenet"):
        get_model("alexnet")
    with pytest.raises(TypeError):
        get_model(3)
    with pytest.raises(ValueError, match="in_channels"):
        get_model("lenet", in_channels=0)
    with pytest.raises(ValueError, match="num_classes"):
        get_model("lenet", num_classes=2.0)
    assert nadlib.get_model("LeNet") is not None  # names are case-insensitive
