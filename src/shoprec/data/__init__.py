"""In-memory training data: id maps, interactions, item catalog, splits, synthetic data.

Nothing here imports a framework (no SQLAlchemy, no torch)."""

from shoprec.data.catalog import ItemCatalog
from shoprec.data.idmap import IdMap
from shoprec.data.interactions import Interactions

__all__ = ["IdMap", "Interactions", "ItemCatalog"]
