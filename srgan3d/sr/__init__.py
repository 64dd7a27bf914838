"""Super-resolution wing: degradation, generator, engine, batch upscaling, training, weights."""

DEFAULT_WEIGHTS = "srgan3d_x2"
"""The shipped generator's name (package data in `srgan3d/sr/weights/`); kept free of torch so
that the CLI can name it without importing the network."""
