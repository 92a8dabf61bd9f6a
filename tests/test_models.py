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


def test_the_registry_holds_the_papers_five_networks_with_their_metadata():
    from nadlib.models import REGISTRY, paper_networks

    assert [a.name for a in paper_networks()] == ["logreg", "lenet", "vgg11", "resnet18", "densenet121"]
    assert [a.display_name for a in paper_networks()] == ["LogReg", "LeNet", "VGG-11", "ResNet-18", "DenseNet-121"]
    for a in paper_networks():
        assert a.family == a.name and not a.is_twin and a.colour and a.published_key
        if a.nopool:  # every CNN has a pooling-free twin of its family, in its colour
            twin = REGISTRY[a.nopool]
            assert twin.is_twin and twin.family == a.name and twin.colour == a.colour and not twin.in_paper
    assert REGISTRY["logreg"].nopool is None
    assert len({a.colour for a in paper_networks()}) == 5


def test_a_registered_network_is_built_everywhere_by_name_and_can_be_removed():
    import torch
    from torch import nn

    import nadlib
    from nadlib.models import REGISTRY, Architecture, paper_networks, register_architecture, unregister_architecture

    class Toy(nn.Module):
        def __init__(self, in_channels=1, num_classes=2):
            super().__init__()
            self.fc = nn.Linear(in_channels * 32 * 32, num_classes)

        def forward(self, x):
            return self.fc(x.flatten(1))

    register_architecture(Architecture("toynet", "ToyNet", Toy, in_paper=True, colour="#000000"))
    try:
        assert "toynet" in ARCHITECTURES and ARCHITECTURES[-1] == "toynet"
        assert paper_networks()[-1].display_name == "ToyNet"
        out = nadlib.seeded_model("toynet", 0, in_channels=3, num_classes=10)(torch.zeros(2, 3, 32, 32))
        assert out.shape == (2, 10)
        with pytest.raises(ValueError, match="already registered"):
            register_architecture(Architecture("toynet", "ToyNet", Toy))
    finally:
        unregister_architecture("toynet")
    assert "toynet" not in REGISTRY and "toynet" not in ARCHITECTURES
    with pytest.raises(ValueError, match="unknown architecture 'toynet'"):
        get_model("toynet")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(name="Toy Net"), ValueError, "lower-case identifier"),
    (dict(name=""), ValueError, "lower-case identifier"),
    (dict(build=3), TypeError, "build must be callable"),
])
def test_a_bad_architecture_is_refused(kwargs, error, message):
    from nadlib.models import Architecture, LogReg

    with pytest.raises(error, match=message):
        Architecture(**{"name": "toy", "display_name": "Toy", "build": LogReg, **kwargs})


def test_a_twin_needs_its_family_registered_first():
    from nadlib.models import Architecture, LogReg, register_architecture

    with pytest.raises(ValueError, match="unknown family 'nonet'"):
        register_architecture(Architecture("nonet_nopool", "x", LogReg, family="nonet"))
