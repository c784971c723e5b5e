"""Seeded synthetic e-commerce data with learnable structure, for tests, benchmarks and `shoprec demo`.

The generative story, per platform (shop):

- Catalog: categories are paths ("Home > Kitchen") from a small vocabulary of departments; each
  category sells a few product types in a typical purchase order (stage 0 main item, 1 accessory,
  2 consumable: coffee maker -> mug -> filters). Items get a brand, a price (type base price x brand
  tier x variant) and a readable title ("Brightline Ceramic Coffee Mug, 350 ml").
- People have latent tastes: a vector in a small latent space that categories and brands also live in,
  giving a preference distribution over categories, brand affinities and a price sensitivity. The
  same person (same user id) can use several platforms and keeps the same tastes there.
- Behaviour: sessions spread over [start_time, start_time + days]. A session either follows up the
  user's last purchase (looking at its accessories) or picks a category by taste and the next stage
  the user has not bought there yet. The user views a few items (chosen by utility), adds the best
  one to the cart with `p_cart`, buys it with `p_purchase`, and sometimes rates it (in the same
  session: a session's events are contiguous in the user's time line).

So popularity within a user's categories, item co-occurrence and "accessory after main item" all beat
random, which is what tests of learning models need. Same seed -> identical data.

This module holds the public side (config, results, `generate`, noise, conversion to Interactions); the
simulated world (vocabulary, latent tastes, one shop's catalog and sessions) is `shoprec.data.synthetic_world`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from shoprec.data.catalog import ItemCatalog
from shoprec.data.idmap import IdMap
from shoprec.data.interactions import Interactions
from shoprec.data.records import EventRecord, ItemRecord, Record, Source, UserRecord
from shoprec.data.synthetic_world import MAX_BRANDS, SLOT_SECONDS, People, Shop, World
from shoprec.errors import ConfigError, DataError
from shoprec.types import EventType

SOURCE_FILE = "synthetic"
_FUTURE = 4_102_444_800.0  # 2100-01-01, for the noise events


# ---------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Counts are per platform; probabilities are per session (see module docstring)."""

    n_users: int = 500  # users per platform
    n_items: int = 300  # items per platform (each platform has its own catalog)
    n_categories: int = 12
    n_brands: int = 20
    sessions_per_user: float = 4.0  # mean; activity is heavy-tailed and every user has >= 1 session
    n_platforms: int = 1
    overlap: float = 0.5  # share of each further platform's users who are people of earlier platforms
    seed: int = 0
    start_time: float = 1_704_067_200.0  # 2024-01-01T00:00:00Z, unix seconds
    days: float = 90.0
    taste_strength: float = 3.0  # how concentrated category tastes are (0: uniform)
    p_cart: float = 0.4  # the session's preferred viewed item is added to the cart
    p_purchase: float = 0.6  # a carted item is bought
    p_follow_up: float = 0.5  # after a purchase, the next session looks at its accessories
    p_rating: float = 0.2  # a purchase is rated 1..5 (an event of type rating with a value)
    noise_rate: float = 0.0  # dirty events mixed into records(), as a share of the clean events

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "n_categories", "n_brands", "n_platforms"):
            if getattr(self, name) < 1:
                raise ConfigError(f"SyntheticConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("overlap", "p_cart", "p_purchase", "p_follow_up", "p_rating", "noise_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"SyntheticConfig.{name} must be in [0, 1], got {value}")
        if self.n_items < self.n_categories:
            raise ConfigError(f"SyntheticConfig.n_items ({self.n_items}) must be >= n_categories "
                              f"({self.n_categories}): every category needs an item")
        if self.n_brands > MAX_BRANDS:
            raise ConfigError(f"SyntheticConfig.n_brands must be <= {MAX_BRANDS}, got {self.n_brands}")
        if self.sessions_per_user < 1:
            raise ConfigError(f"SyntheticConfig.sessions_per_user must be >= 1, got {self.sessions_per_user}")
        if self.days * 86400 < 2 * SLOT_SECONDS:
            raise ConfigError(f"SyntheticConfig.days must cover at least two hours, got {self.days}")
        if self.taste_strength < 0:
            raise ConfigError(f"SyntheticConfig.taste_strength must be >= 0, got {self.taste_strength}")

    @property
    def end_time(self) -> float:
        return self.start_time + self.days * 86400.0


# ---------------------------------------------------------------------------------- results
@dataclass(eq=False)
class PlatformData:
    """One shop: clean canonical records, the hidden structure behind them, and the record stream.

    `items`, `users`, `events` are clean (events in time order). `records()` yields items, users and
    events with the `noise` events mixed in (only when noise_rate > 0; one defect each, see NOISE_KINDS),
    every record with Source("synthetic", line).
    Ground truth, index-aligned with `items`: `item_category` (index into SyntheticData.categories),
    `item_stage` (0 main, 1 accessory, 2 consumable) and `companions` (the accessories of each item).
    """

    name: str
    items: list[ItemRecord]
    users: list[UserRecord]
    events: list[EventRecord]
    item_category: np.ndarray
    item_stage: np.ndarray
    companions: list[np.ndarray]
    noise: list[EventRecord] = field(default_factory=list)
    stream: list[Record] = field(default_factory=list)

    def records(self) -> Iterator[Record]:
        """The platform's records in file order, ready for the ingest pipeline."""
        return iter(self.stream)

    def event_counts(self) -> dict[str, int]:
        """Clean events per event type name."""
        counts: dict[str, int] = {}
        for e in self.events:
            counts[e.event_type.value] = counts.get(e.event_type.value, 0) + 1
        return counts


@dataclass(eq=False)
class SyntheticData:
    """Everything `generate` made: platforms by name plus the people's latent tastes."""

    config: SyntheticConfig
    platforms: dict[str, PlatformData]
    categories: tuple[str, ...]
    brands: tuple[str, ...]
    person_ids: list[str]
    taste: np.ndarray  # (n_people, n_categories) probability of choosing each category

    @property
    def platform_names(self) -> list[str]:
        return list(self.platforms)

    def platform(self, name: str | None = None) -> PlatformData:
        """The named platform (the first one when name is None); DataError naming the valid ones."""
        if name is None:
            return next(iter(self.platforms.values()))
        if name not in self.platforms:
            raise DataError(f"synthetic data has no platform {name!r} (platforms: {', '.join(self.platforms)})")
        return self.platforms[name]

    def to_interactions(self, platform: str | None = None) -> tuple[Interactions, ItemCatalog]:
        """The clean events of one platform as Interactions, and its full catalog (same item IdMap).

        Every user and item of the platform is in the id maps, in record order; weights are 1 (apply
        event weights in preprocessing), `value` holds ratings (NaN elsewhere).
        """
        p = self.platform(platform)
        return _interactions(p), _catalog(p)


def platform_name(index: int) -> str:
    """Name of the index-th synthetic platform: shop-a, shop-b, ..."""
    letters = ""
    n = index
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            return f"shop-{letters}"


# ---------------------------------------------------------------------------------- generate
def generate(config: SyntheticConfig | None = None) -> SyntheticData:
    """Generate seeded synthetic e-commerce data (see the module docstring for the story)."""
    cfg = config if config is not None else SyntheticConfig()
    seeds = np.random.SeedSequence(cfg.seed).spawn(2 + 2 * cfg.n_platforms)
    world_rng, people_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])
    world = World.build(cfg, world_rng)
    memberships = _memberships(cfg, people_rng)
    n_people = max(max(m) for m in memberships) + 1
    people = People.build(cfg, world, n_people, people_rng)
    platforms: dict[str, PlatformData] = {}
    for p, members in enumerate(memberships):
        rng = np.random.default_rng(seeds[2 + 2 * p])
        noise_rng = np.random.default_rng(seeds[3 + 2 * p])
        shop = Shop.build(cfg, world, platform_name(p), rng)
        users, events = shop.simulate(people, members, rng)
        data = PlatformData(name=shop.name, items=shop.items, users=users, events=events,
                            item_category=shop.category.astype(np.int32), item_stage=shop.stage.astype(np.int32),
                            companions=shop.companions)
        _build_stream(data, cfg, noise_rng)
        platforms[data.name] = data
    return SyntheticData(config=cfg, platforms=platforms, categories=world.categories, brands=world.brands,
                         person_ids=people.ids, taste=people.taste)


def _memberships(cfg: SyntheticConfig, rng: np.random.Generator) -> list[list[int]]:
    """Person indices per platform: platform 0 has people 0..n-1; later ones share `overlap` of theirs."""
    out = [list(range(cfg.n_users))]
    next_person = cfg.n_users
    for _ in range(1, cfg.n_platforms):
        seen = sorted({q for m in out for q in m})
        n_shared = min(round(cfg.overlap * cfg.n_users), len(seen))
        shared = rng.choice(seen, size=n_shared, replace=False).tolist() if n_shared else []
        fresh = list(range(next_person, next_person + cfg.n_users - n_shared))
        next_person += len(fresh)
        out.append(sorted(int(q) for q in shared + fresh))
    return out


# ---------------------------------------------------------------------------------- noise and outputs
NOISE_KINDS: tuple[str, ...] = (
    "duplicate", "missing_user", "missing_item", "future_timestamp", "bad_timestamp", "non_product_code",
    "non_positive_quantity", "non_positive_price",
)
"""The defects `noise_rate` plants, in turn, each named after the cleaning rule that should catch it."""


def _build_stream(data: PlatformData, cfg: SyntheticConfig, rng: np.random.Generator) -> None:
    """Build the record stream: items, users, then the events with dirty copies mixed in."""
    n = round(cfg.noise_rate * len(data.events))
    data.noise = [_dirty_copy(data.events[int(rng.integers(len(data.events)))], NOISE_KINDS[k % len(NOISE_KINDS)],
                              rng) for k in range(n)] if data.events else []
    events: list[EventRecord] = list(data.events)
    slots = np.sort(rng.integers(0, len(events) + 1, len(data.noise)))
    for offset, (pos, event) in enumerate(zip(slots, data.noise, strict=True)):
        events.insert(int(pos) + offset, event)
    stream: list[ItemRecord | UserRecord | EventRecord] = [*data.items, *data.users, *events]
    for line, record in enumerate(stream, start=1):
        record.source = Source(file=SOURCE_FILE, line=line)
    data.stream = list(stream)


def _dirty_copy(e: EventRecord, kind: str, rng: np.random.Generator) -> EventRecord:
    """A copy of event `e` with the defect `kind` (see NOISE_KINDS); "duplicate" is an exact copy."""
    bad = EventRecord(e.user_id, e.item_id, e.event_type, e.timestamp, e.value, e.session_id)
    if kind == "missing_user":
        bad.user_id = ""
    elif kind == "missing_item":
        bad.item_id = ""
    elif kind == "future_timestamp":
        bad.timestamp = _FUTURE + float(rng.integers(0, 86400))
    elif kind == "bad_timestamp":
        bad.timestamp = math.nan
    elif kind == "non_product_code":
        bad.item_id = "POST"  # postage booked as an item, as real shop exports do
    elif kind == "non_positive_quantity":
        bad.event_type, bad.value = EventType.PURCHASE, -1.0
    elif kind == "non_positive_price":
        bad.context = {"price": 0.0}
    return bad


def _interactions(p: PlatformData) -> Interactions:
    users = IdMap(u.user_id for u in p.users)
    items = IdMap(i.item_id for i in p.items)
    ev = p.events
    return Interactions(
        user=users.lookup(e.user_id for e in ev), item=items.lookup(e.item_id for e in ev),
        users=users, items=items,
        value=np.array([np.nan if e.value is None else e.value for e in ev], dtype=np.float32),
        timestamp=np.array([e.timestamp for e in ev], dtype=np.int64),
        event_type=np.array([e.event_type.code for e in ev], dtype=np.int8),
    )


def _catalog(p: PlatformData) -> ItemCatalog:
    return ItemCatalog(
        items=IdMap(i.item_id for i in p.items),
        title=[i.title for i in p.items], description=[i.description for i in p.items],
        category=[i.category for i in p.items], brand=[i.brand for i in p.items],
        price=np.array([np.nan if i.price is None else i.price for i in p.items], dtype=np.float32),
        available=np.array([i.available for i in p.items], dtype=bool),
        attributes=[dict(i.attributes) for i in p.items],
    )

