"""What every command shares: one clear line for every error (`clear_errors`, `fail`), the
`--debug` state, integer triples, and the configs whose defaults the options show."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer

from srgan3d.sr.config import ThroughPlaneConfig, UpscaleConfig
from srgan3d.study.config import DeepConfig, ModelingConfig, RadiomicsConfig

# Every option's default is its config's (one source of truth): the CLI shows, the library uses.
UP, RAD, MOD, DEEP, TP = UpscaleConfig(), RadiomicsConfig(), ModelingConfig(), DeepConfig(), ThroughPlaneConfig()

P = ParamSpec("P")
R = TypeVar("R")

#: Set by the `--debug` option before any command runs.
state = {"debug": False}


def clear_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Every error a command raises becomes one clear line and exit code 2 (`fail`); typer's own
    exits and bad-parameter messages pass through."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except Exception as exc:  # noqa: BLE001 - every error becomes one clear line
            fail(exc)

    return wrapper


def fail(exc: BaseException) -> NoReturn:
    """One clear line and a non-zero exit; the traceback only with --debug."""
    if state["debug"]:
        raise exc
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def parse_ints(text: str, what: str) -> tuple[int, int, int]:
    try:
        vals = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what} must be integers like 2 or 2,2,2, not {text!r}") from None
    if len(vals) == 1:
        vals *= 3
    if len(vals) != 3 or any(v < 1 for v in vals):
        raise typer.BadParameter(f"{what} must be one or three positive integers, not {text!r}")
    return tuple(vals)  # type: ignore[return-value]


def through_plane_scale(scale: str) -> bool:
    if scale not in ("2", "through-plane"):
        raise typer.BadParameter(f"--scale must be 2 or through-plane, not {scale!r}")
    return scale == "through-plane"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise typer.BadParameter(f"--shard must look like 2/8, not {text!r}") from None
    return k, n
