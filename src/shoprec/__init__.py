"""shoprec: a self-hosted personalised recommendation engine for e-commerce.

`shoprec.Recommender` (the Python API, docs/python.md) is imported on first use, so `import shoprec` stays light.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Recommender", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Recommender":
        from shoprec.library import Recommender

        return Recommender
    raise AttributeError(f"module 'shoprec' has no attribute {name!r}")
