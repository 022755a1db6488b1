import pytest
import torch

from gout_edge.export.model import PAPER_ABLATION_BLOCKS, GoutResNet, WithCam, count_macs, stage_widths


def test_stage_widths_follow_resnet18_then_stay_at_512():
    assert stage_widths(3) == (64, 128, 256)
    assert stage_widths(6) == (64, 128, 256, 512, 512, 512)


def test_three_stage_model_costs_5_93_gmac_at_320x700():
    # docs/design.md §9: the 3-stage model at 320 × 700 is 5.93 GMAC per frame.
    assert count_macs(GoutResNet(3), 320, 700) == pytest.approx(5.93e9, rel=2e-3)


@pytest.mark.parametrize("blocks", PAPER_ABLATION_BLOCKS)
def test_parameter_names_follow_torchvision(blocks):
    names = set(GoutResNet(blocks).state_dict())
    assert {"conv1.weight", "bn1.running_mean", "fc.weight", "fc.bias"} <= names
    assert f"layer{blocks}.1.conv2.weight" in names
    assert f"layer{blocks + 1}.0.conv1.weight" not in names
    assert "layer2.0.downsample.0.weight" in names and "layer2.0.downsample.1.running_var" in names


def test_cam_identity_holds_in_torch():
    model = GoutResNet(3).eval()
    x = torch.randn(2, 1, 64, 128)
    with torch.no_grad():
        logits, cam, pooled = WithCam(model)(x)
        assert torch.allclose(logits, model(x), atol=1e-5)
        assert torch.allclose(cam.mean((2, 3)) + model.fc.bias, logits, atol=1e-5)
        assert torch.allclose(model.fc(pooled), logits, atol=1e-5)  # the scope guard's features feed the head
    assert cam.shape == (2, 2, 4, 8)
    assert pooled.shape == (2, 256)


def test_unsupported_blocks_are_refused():
    with pytest.raises(ValueError, match="blocks=9"):
        GoutResNet(9)
