"""The Python API: `shoprec.Recommender` and its typed results (docs/python.md)."""

from shoprec.library.recommender import Recommender
from shoprec.library.results import Explained, Recommendations, Recommended

__all__ = ["Explained", "Recommendations", "Recommended", "Recommender"]
