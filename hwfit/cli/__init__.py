"""The command line: thin wrappers that parse, call one function of a layer, and print."""

import sys

# Importing a command module registers its commands on `app`.
from hwfit.cli import audit as _audit  # noqa: F401 - registers its commands
from hwfit.cli import check as _check  # noqa: F401 - registers its commands
from hwfit.cli import devices as _devices  # noqa: F401 - registers its commands
from hwfit.cli import forecast as _forecast  # noqa: F401 - registers its commands
from hwfit.cli import load as _load  # noqa: F401 - registers its commands
from hwfit.cli import plan as _plan  # noqa: F401 - registers its commands
from hwfit.cli import profile as _profile  # noqa: F401 - registers its commands
from hwfit.cli import report as _report  # noqa: F401 - registers its commands
from hwfit.cli import results as _results  # noqa: F401 - registers its commands
from hwfit.cli import serve as _serve  # noqa: F401 - registers its commands
from hwfit.cli import simulate as _simulate  # noqa: F401 - registers its commands
from hwfit.cli import top as _top  # noqa: F401 - registers its commands
from hwfit.cli import train as _train  # noqa: F401 - registers its commands
from hwfit.cli import variants as _variants  # noqa: F401 - registers its commands
from hwfit.cli._app import app, expand_ray_flag
from hwfit.core import HwfitError


def main() -> None:
    """Console-script entry point: run the app, turning HwfitError into one readable line."""
    try:
        app(args=expand_ray_flag(sys.argv[1:]), prog_name="hwfit")
    except HwfitError as error:
        from rich.console import Console
        from rich.markup import escape

        # escaped: a message may hold brackets (pip install 'hwfit[cluster]') that rich would take as markup
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(error))}")
        sys.exit(2)
