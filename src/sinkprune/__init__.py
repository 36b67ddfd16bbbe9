"""sinkprune: sink-aware pruning of diffusion language models (Myrzakhan et al., arXiv 2602.17664).

Importing the package is cheap (no torch): heavy modules are imported where they are used.
"""

__version__ = "0.1.0"
