"""`python -m srgan3d`: the command-line tool, where the `srgan3d` script is not on PATH."""

from srgan3d.cli import app

app(prog_name="srgan3d")
