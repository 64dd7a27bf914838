"""The `srgan3d` command line: thin commands over the library's functions (`sr.py`: the SR
wing's, `study.py`: the study's; `common.py`: what they share)."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from srgan3d.cli import sr, study
from srgan3d.cli.common import state

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="3D super-resolution of liver MRI and radiomics response evaluation.",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: wraps cleanly at 80 columns, no <bool> metavars
)


def _print_version(value: bool) -> None:
    if value:
        from srgan3d import __version__

        typer.echo(f"srgan3d {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logging.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if debug else "%(message)s",
        stream=sys.stderr,
    )


# The commands, in the order `srgan3d --help` lists them.
app.command(short_help="Double the resolution of scans; exact geometry, manifest.")(sr.upscale)
app.command(short_help="Throughput and memory of the upscale engine here.")(sr.benchmark)
app.command("merge-manifests", short_help="Join the shard manifests of one output folder.")(sr.merge_manifests_cmd)
app.command()(sr.info)
app.command(short_help="The whole study on a built-in synthetic cohort.")(study.demo)
app.command("synth-cohort", short_help="Write a synthetic cohort (simulated responses).")(study.synth_cohort)
app.command(short_help="Radiomics pre/post SR, models, DeLong, DCA, report.")(study.evaluate)
app.command()(study.report)
app.command(short_help="Train or fine-tune the generator on your scans.")(sr.train)
app.command(short_help="Write a run's generator as weights + model card.")(sr.export)

__all__ = ["app"]

if __name__ == "__main__":  # pragma: no cover
    app()
