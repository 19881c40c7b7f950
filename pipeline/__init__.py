"""Library of the workflow: all the science and numerics (never imports snakemake).

studies.py is the registry of the studies; linear/ the shared engine of deep linear networks;
one subpackage per study (model, study, summary, figures, claims); shared modules for the
config, seeds, tables, shards, code digests, claims, statistics and the report.
"""
