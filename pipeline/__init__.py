"""Library of the workflow: all the science and numerics (never imports snakemake)."""
