"""A synthetic shop whose item "image" vectors carry the signal its text lacks (the planted answer of the named
vectors' tests and benchmark).

Users stay inside one cluster of items; every title is the same word, so only the image vectors (cluster
centroid + noise) tell the clusters apart. The last `hidden_per_cluster` items of every cluster never appear
in an event: a model can rank them for the right users only through their vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoprec.data.catalog import ItemCatalog
from shoprec.data.idmap import IdMap
from shoprec.data.interactions import Interactions
from shoprec.data.records import EventRecord, ItemRecord, Record, Source
from shoprec.types import EventType


@dataclass(frozen=True)
class VectorShop:
    data: Interactions
    catalog: ItemCatalog
    hidden: np.ndarray  # item indices that never appear in an event (cold items)
    cluster_of: np.ndarray  # (n_items,) each item's cluster
    user_cluster: np.ndarray  # (n_users,) each user's cluster

    def records(self, t0: float = 1_700_000_000.0) -> list[Record]:
        """The shop as import records: every item (title, image vector), then every event."""
        out: list[Record] = []
        for i in range(len(self.catalog)):
            out.append(ItemRecord(self.catalog.items.external(i), title=self.catalog.title[i],
                                  vectors={"image": self.catalog.vectors["image"][i].tolist()},
                                  source=Source("items.jsonl", i + 1)))
        users, items = self.data.users, self.data.items
        for k, (u, i) in enumerate(zip(self.data.user, self.data.item, strict=True)):
            out.append(EventRecord(users.external(int(u)), items.external(int(i)), EventType.VIEW, t0 + k,
                                   source=Source("events.jsonl", k + 1)))
        return out


def vector_shop(n_users: int = 300, n_clusters: int = 4, per_cluster: int = 15, length: int = 8,
                hidden_per_cluster: int = 3, dim: int = 16, noise: float = 0.3, seed: int = 0) -> VectorShop:
    rng = np.random.default_rng(seed)
    n_items = n_clusters * per_cluster
    cluster_of = np.arange(n_items) // per_cluster
    hidden = np.array([c * per_cluster + j for c in range(n_clusters)
                       for j in range(per_cluster - hidden_per_cluster, per_cluster)], dtype=np.int64)
    visible = np.setdiff1d(np.arange(n_items), hidden)
    user_cluster = np.arange(n_users) % n_clusters
    users, items = [], []
    for u in range(n_users):
        pool = visible[cluster_of[visible] == user_cluster[u]]
        users += [u] * length
        items += list(rng.choice(pool, length))
    centroids = rng.normal(size=(n_clusters, dim))
    image = (centroids[cluster_of] + noise * rng.normal(size=(n_items, dim))).astype(np.float32)
    catalog = ItemCatalog(items=IdMap(f"i{i}" for i in range(n_items)), title=["product"] * n_items,
                          vectors={"image": image}, vector_mask={"image": np.ones(n_items, dtype=bool)})
    data = Interactions(user=np.array(users), item=np.array(items), users=IdMap(f"u{u}" for u in range(n_users)),
                        items=catalog.items, timestamp=np.arange(len(users), dtype=np.int64))
    return VectorShop(data, catalog, hidden, cluster_of, user_cluster)


def cold_ndcg(scores: np.ndarray, shop: VectorShop, k: int = 3, seed: int = 0) -> float:
    """Mean NDCG@k of each user's ranking of the cold items (ties broken at random), the cold items of the
    user's cluster being the relevant ones: 1.0 = they come first. With k = hidden_per_cluster (3) a random
    order scores about n_clusters**-1 (0.25 with 4 clusters)."""
    rng = np.random.default_rng(seed)
    cold = scores[:, shop.hidden] + 1e-6 * rng.random((len(scores), len(shop.hidden)))
    relevant = shop.cluster_of[shop.hidden][None, :] == shop.user_cluster[:len(scores), None]
    order = np.argsort(-cold, axis=1)[:, :k]
    gains = np.take_along_axis(relevant, order, axis=1) / np.log2(np.arange(2, order.shape[1] + 2))
    ideal = np.array([(1 / np.log2(np.arange(2, min(int(n), k) + 2))).sum() for n in relevant.sum(axis=1)])
    return float((gains.sum(axis=1) / np.maximum(ideal, 1e-12)).mean())
