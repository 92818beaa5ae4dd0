"""The `precoro-assets` command."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """Precoro procurement data in a DuckDB warehouse, driven by Dagster."""


@main.command()
@click.option("--port", default=8787, show_default=True, help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--seed", default=7, show_default=True, help="Same seed, same company.")
@click.option("--days", default=90, show_default=True, help="Days of document history before today.")
@click.option("--documents", default=600, show_default=True, help="About how many documents to generate.")
@click.option("--limits", default="real", show_default=True, help="real | off | scaled:F (windows divided by F).")
@click.option("--tick-every", type=float, default=None, help="Let the company live: a tick every N seconds.")
def simulator(port: int, seed: int, days: int, documents: int, limits: str, tick_every: float | None) -> None:
    """Serve a simulated Precoro company on http://127.0.0.1:PORT."""
    from .simulator.limits import Limits
    from .simulator.server import serve_forever

    try:
        Limits.parse(limits)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--limits") from None
    serve_forever(seed, days, documents, limits, port, tick_every)


if __name__ == "__main__":
    main()
