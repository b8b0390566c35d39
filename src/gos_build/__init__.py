"""gos-build: regenerate GOS10m-style geomorphology scene-classification datasets.

Stages live in one module each (``grid``, ``demo``, ``dem``, ``terrain``, ...);
the Snakemake workflow calls them through the ``gos-build`` console command.
"""

__version__ = "0.1.0"
