"""``gout-edge keygen --out NAME``: an Ed25519 key pair for signing bundles."""

from __future__ import annotations

from pathlib import Path

import typer

from ._options import json_option
from ._output import emit_json, stdout


def register(app: typer.Typer) -> None:
    @app.command("keygen", short_help="Make an Ed25519 key pair for signing bundles.")
    def keygen(
        out: Path = typer.Option(
            ..., "--out", "-o", metavar="NAME", help="Key name: writes NAME.key (private, 0600) and NAME.pub."
        ),
        json_out: bool = json_option(),
    ) -> None:
        """Make an Ed25519 key pair: sign bundles with NAME.key, configure carts with NAME.pub."""
        from gout_edge.signing import generate_keypair

        key, pub = generate_keypair(out)
        if json_out:
            emit_json({"private_key": str(key), "public_key": str(pub)})
            return
        stdout.print(f"private key: {key} (keep it secret; sign with `gout-edge export … --sign-key {key}`)")
        stdout.print(f"public key:  {pub} (install on carts as ~/.config/gout-edge/trusted.pub or pass --public-key)")
