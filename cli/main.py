"""The `micrograd` command: a thin Typer shell over the library.

Start-up imports nothing heavy (no NumPy engine, no torchvision) so that
`micrograd --help` answers at once; each command imports what it needs.
"""
from __future__ import annotations

from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="micrograd",
    help="Train, evaluate and run neural networks on micrograd's NumPy autograd engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool):
    if value:
        from micrograd import __version__

        typer.echo(f"micrograd {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
):
    """Train, evaluate and run neural networks on micrograd's NumPy autograd engine."""
