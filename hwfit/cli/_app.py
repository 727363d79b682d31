"""The Typer application every command module registers on."""

import re

import typer

app = typer.Typer(
    name="hwfit",
    help="Fit AI models to the hardware they run on: measure what a model costs on each "
    "device, backend, precision and batch size.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def split_values(values: list[str] | None) -> list[str] | None:
    """Repeated or comma-separated option values as one list: `-b ort,openvino -b torch`."""
    if not values:
        return None
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


RAY_FLAG = "--ray"
RAY_AUTO = "auto"
_ADDRESS = re.compile(r"^(ray://)?[\w.\-\[\]:]+:\d+$")


def ray_option(what: str):
    """`--ray [ADDRESS]`: run on a Ray cluster (ADDRESS: HOST:PORT of its head; alone: the one
    `ray start` runs on this machine). Needs the `cluster` extra; without it the command says how to get it.
    `--ray` alone is made `--ray auto` by `expand_ray_flag` (typer has no option with an optional value)."""
    return typer.Option(
        None,
        RAY_FLAG,
        metavar="[ADDRESS]",
        help=f"{what} on a Ray cluster. ADDRESS: HOST:PORT of its head; --ray alone: the cluster `ray start` "
        "runs on this machine. Needs pip install 'hwfit\\[cluster]'.",
    )


def expand_ray_flag(argv: list[str]) -> list[str]:
    """`--ray` not followed by an address (HOST:PORT, ray://HOST:PORT or auto) becomes `--ray auto`."""
    expanded = []
    for index, word in enumerate(argv):
        expanded.append(word)
        if word != RAY_FLAG:
            continue
        following = argv[index + 1] if index + 1 < len(argv) else None
        if following is None or not (following == RAY_AUTO or _ADDRESS.match(following)):
            expanded.append(RAY_AUTO)
    return expanded
