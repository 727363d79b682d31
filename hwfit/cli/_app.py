"""The Typer application every command module registers on."""

import warnings

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


def ray_option(what: str):
    """`--ray [ADDRESS]`: run on a Ray cluster (ADDRESS: HOST:PORT of its head; alone: the one
    `ray start` runs on this machine). Needs the `cluster` extra; without it the command says how to get it."""
    with warnings.catch_warnings():
        # typer marks is_flag/flag_value as unsupported but passes them to click, whose optional-value
        # option is what `--ray [ADDRESS]` is; tests/cluster/test_without_ray.py pins that it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        return _ray_option(what)


def _ray_option(what: str):
    return typer.Option(
        None,
        "--ray",
        flag_value="auto",
        is_flag=False,
        metavar="[ADDRESS]",
        help=f"{what} on a Ray cluster. ADDRESS: HOST:PORT of its head; --ray alone: the cluster `ray start` "
        "runs on this machine. Needs pip install 'hwfit\\[cluster]'.",
    )
