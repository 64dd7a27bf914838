"""Super-resolution wing: degradation, generator, engine, batch upscaling, training, weights."""
