"""Ed25519 signing of the manifest: keygen, signed export, refusal of every kind of mismatch."""

from __future__ import annotations

import json
import shutil
import stat

import pytest
import torch
from support.bundles import SMALL

from gout_edge.cli import main
from gout_edge.edge_runtime.inference.loading import open_bundle
from gout_edge.errors import BundleTamperedError, InputError, UsageError
from gout_edge.export.build import ExportConfig, export_bundle
from gout_edge.export.model import GoutResNet
from gout_edge.signing import generate_keypair


@pytest.fixture(scope="module")
def signed(tmp_path_factory, toy_csv):
    """A bundle signed by export (calibration images from the toy data set: quicker than phantoms)."""
    root = tmp_path_factory.mktemp("signed")
    key, pub = generate_keypair(root / "owner")
    torch.save(GoutResNet(2).state_dict(), root / "m.pt")
    export_bundle(ExportConfig(root / "m.pt", root / "bundle", input=SMALL, int8=False, calib=toy_csv, sign_key=key))
    return root, key, pub


def test_keygen_writes_an_owner_only_private_key_and_refuses_to_overwrite(tmp_path):
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 0
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    assert (tmp_path / "k.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(UsageError, match="already exists"):
        generate_keypair(tmp_path / "k")


def test_signed_bundle_opens_with_its_key(signed):
    root, _, pub = signed
    assert open_bundle(root / "bundle", public_key=pub).manifest.model.blocks == 2


def test_threshold_edit_in_a_signed_manifest_is_refused_naming_the_signature(signed, tmp_path):
    root, _, pub = signed
    copy = tmp_path / "b"
    shutil.copytree(root / "bundle", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["decision"]["patient_threshold"] = 0.9
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleTamperedError, match="signature"):
        open_bundle(copy, public_key=pub)
    assert main(["info", str(copy), "--public-key", str(pub)]) == 4


def test_wrong_key_missing_signature_and_bad_key_file(signed, tmp_path):
    root, _, _ = signed
    _, other_pub = generate_keypair(tmp_path / "other")
    with pytest.raises(BundleTamperedError, match="another key"):
        open_bundle(root / "bundle", public_key=other_pub)
    unsigned = tmp_path / "unsigned"
    shutil.copytree(root / "bundle", unsigned)
    (unsigned / "manifest.sig").unlink()
    with pytest.raises(BundleTamperedError, match="not signed"):
        open_bundle(unsigned, public_key=other_pub)
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(InputError, match="not a PEM public key"):
        open_bundle(root / "bundle", public_key=tmp_path / "junk.pub")


def test_the_environment_configures_the_device_key(signed, tmp_path, monkeypatch):
    root, _, _ = signed
    _, other_pub = generate_keypair(tmp_path / "other")
    monkeypatch.setenv("GOUT_EDGE_PUBLIC_KEY", str(other_pub))
    with pytest.raises(BundleTamperedError):
        open_bundle(root / "bundle")
