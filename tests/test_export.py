"""Export: checkpoint forms, the RGB stem fold, parity of the ONNX graph, CAM ≡ Grad-CAM."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from support.bundles import SMALL, export_graph, save_random_checkpoint
from torch import nn

from gout_edge.errors import CheckpointError
from gout_edge.export.checkpoint import load_checkpoint
from gout_edge.export.model import PAPER_ABLATION_BLOCKS, GoutResNet


def _ort(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.slow
@pytest.mark.parametrize("blocks", PAPER_ABLATION_BLOCKS)
def test_export_parity_for_each_ablation_depth(tmp_path, blocks):
    """The ONNX graph of each depth against torch: export's first step alone (``export_graph``); the
    rest of a bundle does not depend on the depth and is checked on the session's bundle."""
    model = save_random_checkpoint(tmp_path / "m.pt", blocks)
    result = export_graph(tmp_path / "m.pt", tmp_path / "graph")
    assert result.parity.passed
    assert result.parity.logits_max_abs_diff <= 1e-4 and result.parity.cam_max_abs_diff <= 1e-4
    session = _ort(result.onnx)
    x = np.random.default_rng(1).standard_normal((3, 1, SMALL.height, SMALL.width)).astype(np.float32)
    logits, cam, _features = session.run(None, {"input": x})
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    np.testing.assert_allclose(cam.mean(axis=(2, 3)) + model.fc.bias.detach().numpy(), logits, atol=1e-5)
    stride = result.outputs.cam_stride
    assert cam.shape == (3, 2, -(-SMALL.height // stride), -(-SMALL.width // stride))
    assert (result.outputs.cam_height, result.outputs.cam_width) == cam.shape[2:]
    assert result.blocks == blocks


# --- a checkpoint written by plain torch, with torchvision's names, without gout-edge code -------


class _TvBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 else None
        )

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + idt)


class _TruncatedTorchvisionResNet18(nn.Module):
    """torchvision.models.resnet18 layout, cut after layer3, RGB stem, 2-class head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(_TvBlock(64, 64, 1), _TvBlock(64, 64, 1))
        self.layer2 = nn.Sequential(_TvBlock(64, 128, 2), _TvBlock(128, 128, 1))
        self.layer3 = nn.Sequential(_TvBlock(128, 256, 2), _TvBlock(256, 256, 1))
        self.fc = nn.Linear(256, 2)

    def features(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


@pytest.fixture(scope="module")
def torchvision_checkpoint(tmp_path_factory):
    torch.manual_seed(3)
    model = _TruncatedTorchvisionResNet18().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("tv") / "resnet18_3stage.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 12, "arch": "resnet18"}, path)
    return model, path


def test_torchvision_checkpoint_with_rgb_stem_exports_and_reproduces_logits_and_cam(tmp_path, torchvision_checkpoint):
    reference, path = torchvision_checkpoint
    result = export_graph(path, tmp_path / "b")
    assert result.parity.passed and result.folded_rgb_stem and result.blocks == 3
    grey = np.random.default_rng(0).standard_normal((2, 1, SMALL.height, SMALL.width)).astype(np.float32)
    logits, cam, _features = _ort(result.onnx).run(None, {"input": grey})
    with torch.no_grad():
        rgb = torch.from_numpy(grey).repeat(1, 3, 1, 1)
        np.testing.assert_allclose(logits, reference(rgb).numpy(), atol=1e-4)
        feats = reference.features(rgb)
        ref_cam = torch.einsum("ck,nkhw->nchw", reference.fc.weight, feats).numpy()
    np.testing.assert_allclose(cam, ref_cam, atol=1e-4)


def test_cam_equals_grad_cam_on_last_stage_up_to_positive_scale(small_bundle):
    """Hook-based Grad-CAM (Selvaraju et al.): weights = spatial mean of d logit_c / d features."""
    result, model = small_bundle
    x = torch.from_numpy(np.random.default_rng(5).standard_normal((1, 1, SMALL.height, SMALL.width)).astype(np.float32))
    feats = model.features(x).detach().requires_grad_(True)
    logits = model.fc(feats.mean((2, 3)))
    _, onnx_cam, _features = _ort(result.bundle / "model.fp32.onnx").run(None, {"input": x.numpy()})
    for c in (0, 1):
        (grad,) = torch.autograd.grad(logits[0, c], feats, retain_graph=True)
        alpha = grad.mean((2, 3), keepdim=True)
        grad_cam = torch.relu((alpha * feats).sum(1))[0].detach().numpy()
        edge_cam = np.maximum(onnx_cam[0, c], 0)
        assert grad_cam.max() > 0
        scale = grad_cam.sum() / edge_cam.sum()
        assert scale > 0
        np.testing.assert_allclose(edge_cam * scale, grad_cam, rtol=1e-3, atol=1e-6 * grad_cam.max())


# --- checkpoint forms and refusals ---------------------------------------------------------------


def test_safetensors_and_plain_state_dict_and_prefixed_dict_load_identically(tmp_path):
    from safetensors.torch import save_file

    model = GoutResNet(2)
    state = model.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "m.safetensors", metadata={"blocks": "2"})
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in state.items()}, "lr": 0.001}, tmp_path / "wrapped.pt")
    x = torch.randn(1, 1, 64, 96)
    with torch.no_grad():
        expected = model.eval()(x)
        for name in ("m.safetensors", "plain.pt", "wrapped.pt"):
            loaded = load_checkpoint(tmp_path / name)
            assert loaded.blocks == 2
            torch.testing.assert_close(loaded.model(x), expected)
    assert load_checkpoint(tmp_path / "wrapped.pt").settings == {"lr": 0.001}


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"conv1.weight": _Payload(marker)}, fh)
    # Sanity: the payload is live — unpickling without protection runs it.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists()
    with pytest.raises(CheckpointError, match="could execute code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_wrong_blocks_names_the_mismatch_not_missing_keys(tmp_path):
    torch.save(GoutResNet(3).state_dict(), tmp_path / "m.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "m.pt", blocks=4)
    message = str(info.value)
    assert "--blocks 4" in message and "3 residual stage" in message and "missing" not in message


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda s: {k: v for k, v in s.items() if not k.startswith("layer2.")}, "not consecutive"),
        (lambda s: {**s, "fc.weight": torch.zeros(5, 256), "fc.bias": torch.zeros(5)}, "2 outputs"),
        (lambda s: {**s, "conv1.weight": torch.zeros(64, 4, 7, 7)}, "4 input channels"),
        (lambda s: {k: v for k, v in s.items() if k != "layer1.0.bn1.weight"}, "missing"),
    ],
)
def test_unusable_checkpoints_are_explained(tmp_path, mutate, match):
    torch.save(mutate(GoutResNet(3).state_dict()), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tmp_path / "m.pt")


def test_non_checkpoint_files_are_input_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(tmp_path / "notes.txt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")
