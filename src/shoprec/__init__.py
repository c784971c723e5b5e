"""shoprec: a self-hosted personalised recommendation engine for e-commerce."""

__version__ = "0.1.0"
