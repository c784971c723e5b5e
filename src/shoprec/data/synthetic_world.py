"""The simulated world behind `shoprec.data.synthetic`: the catalog vocabulary, categories and brands in a
latent space (`World`), people's tastes (`People`), and one shop's catalog and behaviour simulation (`Shop`).

Internal to `shoprec.data.synthetic` (its module docstring tells the generative story); `generate` there
draws the seeds, builds these and turns each shop's simulated users and events into a `PlatformData`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from shoprec.data.records import EventRecord, ItemRecord, UserRecord
from shoprec.types import EventType

if TYPE_CHECKING:
    from shoprec.data.synthetic import SyntheticConfig

LATENT_DIM = 8
SLOT_SECONDS = 3600  # every session fits in one hour; sessions of a user never overlap
MAX_VIEWS = 8  # 8 views x < 180 s + cart < 60 s + purchase < 600 s + rating < 900 s < one slot


class _Type(NamedTuple):
    noun: str
    stage: int  # 0 main item, 1 accessory, 2 consumable / extra
    price: float  # base price
    adjectives: tuple[str, ...]
    variants: tuple[str, ...]


def _t(noun: str, stage: int, price: float, adjectives: str, variants: str) -> _Type:
    return _Type(noun, stage, price, tuple(adjectives.split("|")), tuple(variants.split("|")))


_VOCAB: tuple[tuple[str, tuple[_Type, ...]], ...] = (
    ("Home > Kitchen", (_t("Coffee Maker", 0, 80, "Drip|Programmable", "1.2 l|1.5 l"),
                        _t("Coffee Mug", 1, 12, "Ceramic|Insulated", "350 ml|450 ml"),
                        _t("Coffee Filters", 2, 5, "Paper|Unbleached", "100 pack|200 pack"))),
    ("Home > Bedding", (_t("Duvet", 0, 70, "Down|All-Season", "135x200 cm|155x220 cm"),
                        _t("Duvet Cover", 1, 35, "Cotton|Linen", "135x200 cm|155x220 cm"),
                        _t("Pillowcase Set", 2, 15, "Satin|Organic Cotton", "2 pack|4 pack"))),
    ("Home > Lighting", (_t("Floor Lamp", 0, 90, "Nordic|Brass", "150 cm|170 cm"),
                         _t("Lamp Shade", 1, 25, "Linen|Paper", "30 cm|40 cm"),
                         _t("LED Bulb", 2, 8, "Dimmable|Warm White", "9 W|12 W"))),
    ("Electronics > Cameras", (_t("Mirrorless Camera", 0, 650, "Compact|Weather-Sealed", "24 MP|33 MP"),
                               _t("Camera Lens", 1, 300, "Prime|Zoom", "35 mm|50 mm|85 mm"),
                               _t("Memory Card", 2, 20, "High-Speed|Pro", "64 GB|128 GB"))),
    ("Electronics > Audio", (_t("Headphones", 0, 120, "Wireless|Noise-Cancelling", "Over-Ear|On-Ear"),
                             _t("Headphone Case", 1, 15, "Hard-Shell|Travel", "Black|Grey"),
                             _t("Ear Cushions", 2, 12, "Memory Foam|Velour", "1 pair|2 pairs"))),
    ("Electronics > Phones", (_t("Smartphone", 0, 400, "5G|Dual-SIM", "128 GB|256 GB"),
                              _t("Phone Case", 1, 18, "Rugged|Slim", "6.1 inch|6.7 inch"),
                              _t("Screen Protector", 2, 9, "Tempered Glass|Privacy", "2 pack|3 pack"))),
    ("Sports > Running", (_t("Running Shoes", 0, 110, "Lightweight|Trail", "EU 40|EU 42|EU 44"),
                          _t("Running Socks", 1, 12, "Cushioned|Merino", "3 pack|5 pack"),
                          _t("Energy Gel", 2, 6, "Citrus|Berry", "6 pack|12 pack"))),
    ("Sports > Cycling", (_t("Road Bike", 0, 900, "Aluminium|Carbon", "54 cm|56 cm"),
                          _t("Bike Helmet", 1, 60, "Aero|Ventilated", "M|L"),
                          _t("Inner Tube", 2, 8, "Butyl|Latex", "700x25c|700x28c"))),
    ("Sports > Yoga", (_t("Yoga Mat", 0, 35, "Non-Slip|Cork", "4 mm|6 mm"),
                       _t("Yoga Block", 1, 12, "Foam|Cork", "1 piece|2 pack"),
                       _t("Yoga Strap", 2, 9, "Cotton|Adjustable", "1.8 m|2.5 m"))),
    ("Beauty > Skin Care", (_t("Face Cleanser", 0, 14, "Gentle|Foaming", "150 ml|250 ml"),
                            _t("Moisturiser", 1, 22, "Hydrating|Night", "50 ml|75 ml"),
                            _t("Sheet Mask", 2, 10, "Soothing|Brightening", "5 pack|10 pack"))),
    ("Beauty > Hair Care", (_t("Hair Dryer", 0, 60, "Ionic|Compact", "1800 W|2200 W"),
                            _t("Shampoo", 1, 9, "Repairing|Volumising", "250 ml|500 ml"),
                            _t("Conditioner", 2, 9, "Smoothing|Colour-Care", "250 ml|500 ml"))),
    ("Beauty > Fragrance", (_t("Eau de Parfum", 0, 65, "Floral|Woody", "50 ml|100 ml"),
                            _t("Body Lotion", 1, 18, "Scented|Rich", "200 ml|400 ml"),
                            _t("Travel Atomiser", 2, 10, "Refillable|Glass", "5 ml|8 ml"))),
    ("Garden > Tools", (_t("Lawn Mower", 0, 250, "Cordless|Petrol", "36 cm|42 cm"),
                        _t("Garden Gloves", 1, 10, "Leather|Grip", "M|L"),
                        _t("Mower Blade", 2, 20, "Replacement|Mulching", "36 cm|42 cm"))),
    ("Garden > Plants", (_t("Plant Pot", 0, 20, "Terracotta|Glazed", "20 cm|30 cm"),
                         _t("Potting Soil", 1, 8, "Organic|Peat-Free", "20 l|40 l"),
                         _t("Plant Food", 2, 7, "Liquid|Slow-Release", "500 ml|1 l"))),
    ("Garden > Outdoor Living", (_t("Garden Chair", 0, 70, "Teak|Folding", "1 piece|2 pack"),
                                 _t("Seat Cushion", 1, 20, "Weatherproof|Padded", "40x40 cm|45x45 cm"),
                                 _t("Furniture Cover", 2, 25, "Waterproof|Breathable", "M|L"))),
    ("Toys > Building", (_t("Building Set", 0, 45, "Starter|Deluxe", "250 pieces|500 pieces"),
                         _t("Baseplate", 1, 12, "Green|Grey", "16x16 studs|32x32 studs"),
                         _t("Storage Box", 2, 15, "Stackable|Sorting", "5 l|10 l"))),
    ("Toys > Puzzles", (_t("Jigsaw Puzzle", 0, 18, "Landscape|Art", "500 pieces|1000 pieces"),
                        _t("Puzzle Mat", 1, 20, "Roll-Up|Felt", "1000 pieces|1500 pieces"),
                        _t("Puzzle Glue", 2, 6, "Clear|Quick-Dry", "120 ml|200 ml"))),
    ("Toys > Board Games", (_t("Board Game", 0, 35, "Strategy|Family", "2-4 players|2-6 players"),
                            _t("Expansion Pack", 1, 20, "Seafarers|Legends", "1 box|2 boxes"),
                            _t("Card Sleeves", 2, 6, "Matte|Clear", "100 pack|200 pack"))),
    ("Books > Fiction", (_t("Novel", 0, 15, "Hardcover|Paperback", "320 pages|480 pages"),
                         _t("Bookmark", 1, 4, "Leather|Metal", "1 piece|3 pack"),
                         _t("Reading Light", 2, 15, "Clip-On|Rechargeable", "Black|White"))),
    ("Books > Cooking", (_t("Cookbook", 0, 25, "Vegetarian|Baking", "200 pages|300 pages"),
                         _t("Cookbook Stand", 1, 20, "Bamboo|Acrylic", "Small|Large"),
                         _t("Recipe Cards", 2, 8, "Blank|Illustrated", "50 pack|100 pack"))),
    ("Books > Children", (_t("Picture Book", 0, 12, "Bedtime|Animal", "24 pages|32 pages"),
                          _t("Activity Book", 1, 8, "Sticker|Colouring", "48 pages|64 pages"),
                          _t("Crayons", 2, 5, "Washable|Jumbo", "12 pack|24 pack"))),
    ("Pet > Dogs", (_t("Dog Bed", 0, 55, "Orthopedic|Washable", "M|L"),
                    _t("Dog Food", 1, 30, "Grain-Free|Puppy", "2 kg|6 kg"),
                    _t("Chew Toy", 2, 8, "Rubber|Rope", "M|L"))),
    ("Pet > Cats", (_t("Cat Tree", 0, 80, "Sisal|Compact", "90 cm|140 cm"),
                    _t("Cat Litter", 1, 12, "Clumping|Silica", "5 l|10 l"),
                    _t("Cat Treats", 2, 4, "Salmon|Chicken", "60 g|120 g"))),
    ("Pet > Fish", (_t("Aquarium", 0, 120, "Glass|Nano", "30 l|60 l"),
                    _t("Aquarium Filter", 1, 35, "Internal|Sponge", "300 l/h|600 l/h"),
                    _t("Fish Food", 2, 6, "Flake|Pellet", "100 ml|250 ml"))),
    ("Fashion > Outerwear", (_t("Rain Jacket", 0, 90, "Waterproof|Packable", "S|M|L"),
                             _t("Beanie", 1, 18, "Wool|Knit", "One Size|Kids"),
                             _t("Waterproofing Spray", 2, 10, "Fabric|Leather", "300 ml|500 ml"))),
    ("Fashion > Bags", (_t("Backpack", 0, 60, "Laptop|Rolltop", "20 l|30 l"),
                        _t("Packing Cubes", 1, 22, "Compression|Mesh", "3 pack|5 pack"),
                        _t("Luggage Tag", 2, 7, "Leather|Silicone", "1 piece|2 pack"))),
    ("Fashion > Watches", (_t("Wristwatch", 0, 150, "Automatic|Quartz", "38 mm|42 mm"),
                           _t("Watch Strap", 1, 25, "Leather|Steel", "20 mm|22 mm"),
                           _t("Watch Winder", 2, 45, "Single|Double", "Black|Walnut"))),
)
_BRAND_HEADS = ("Bright", "North", "Silver", "Blue", "Oak", "Nova", "Green", "True", "Urban", "Pure",
                "Swift", "Golden", "Iron", "Cloud", "Sun", "Maple")
_BRAND_TAILS = ("line", "field", "craft", "works", "wave", "peak", "stone", "leaf", "ware", "haus",
                "nest", "point")
MAX_BRANDS = len(_BRAND_HEADS) * len(_BRAND_TAILS)
_COUNTRIES = ("DE", "FR", "GB", "NL", "ES", "IT", "PL", "SE")


@dataclass
class World:
    """Categories, brands and their latent vectors, shared by every platform."""

    categories: tuple[str, ...]
    types: list[tuple[_Type, ...]]  # product types per category
    departments: np.ndarray  # department index per category
    category_vec: np.ndarray  # (n_categories, D)
    brands: tuple[str, ...]
    brand_vec: np.ndarray  # (n_brands, D)
    brand_tier: np.ndarray  # price multiplier per brand
    brand_departments: list[set[int]]

    @classmethod
    def build(cls, cfg: SyntheticConfig, rng: np.random.Generator) -> World:
        picks = rng.permutation(len(_VOCAB))
        names, types, depts = [], [], []
        dept_names = sorted({path.split(" > ")[0] for path, _ in _VOCAB})
        for c in range(cfg.n_categories):
            path, product_types = _VOCAB[int(picks[c % len(_VOCAB)])]
            names.append(path if c < len(_VOCAB) else f"{path} {c // len(_VOCAB) + 1}")
            types.append(product_types)
            depts.append(dept_names.index(path.split(" > ")[0]))
        dept_vec = rng.standard_normal((len(dept_names), LATENT_DIM))
        cat_vec = _unit(dept_vec[depts] + 0.7 * rng.standard_normal((cfg.n_categories, LATENT_DIM)))
        brand_names = [_BRAND_HEADS[i // len(_BRAND_TAILS)] + _BRAND_TAILS[i % len(_BRAND_TAILS)]
                       for i in rng.choice(MAX_BRANDS, size=cfg.n_brands, replace=False)]
        present = sorted(set(depts))
        brand_depts = [{present[b % len(present)]} for b in range(cfg.n_brands)]
        for covered in brand_depts:
            covered.update(int(d) for d in rng.choice(present, size=int(rng.integers(0, 3)), replace=True))
        brand_vec = np.stack([_unit(dept_vec[sorted(d)].mean(axis=0) + 0.8 * rng.standard_normal(LATENT_DIM))
                              for d in brand_depts])
        tier = np.exp(rng.normal(0.0, 0.35, cfg.n_brands))
        return cls(tuple(names), types, np.array(depts), cat_vec, tuple(brand_names), brand_vec, tier, brand_depts)


@dataclass
class People:
    """Latent tastes of every person (the same on every platform they use)."""

    ids: list[str]
    taste: np.ndarray  # (n, n_categories) category choice probabilities
    taste_cdf: np.ndarray  # cumulative sums of taste, for sampling
    brand_affinity: np.ndarray  # (n, n_brands) utility added to items of the brand
    price_sensitivity: np.ndarray  # (n,) utility lost per unit of log relative price
    activity: np.ndarray  # (n,) session-count multiplier, mean ~1
    country: list[str]

    @classmethod
    def build(cls, cfg: SyntheticConfig, world: World, n: int, rng: np.random.Generator) -> People:
        z = _unit(rng.standard_normal((n, LATENT_DIM)))
        logits = cfg.taste_strength * (z @ world.category_vec.T + 0.5 * rng.standard_normal((n, len(world.categories))))
        taste = np.exp(logits - logits.max(axis=1, keepdims=True))
        taste /= taste.sum(axis=1, keepdims=True)
        affinity = 1.5 * (z @ world.brand_vec.T) + 0.5 * rng.standard_normal((n, len(world.brands)))
        width = max(5, len(str(n - 1)))
        return cls(
            ids=[f"u{k:0{width}d}" for k in range(n)], taste=taste, taste_cdf=np.cumsum(taste, axis=1),
            brand_affinity=affinity,
            price_sensitivity=rng.normal(0.8, 0.6, n), activity=rng.lognormal(-0.18, 0.6, n),
            country=[_COUNTRIES[int(i)] for i in rng.integers(0, len(_COUNTRIES), n)],
        )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------- one shop
@dataclass
class Shop:
    """One platform's catalog (arrays index-aligned with its items) and the behaviour simulation."""

    cfg: SyntheticConfig
    world: World
    name: str
    items: list[ItemRecord]
    category: np.ndarray
    stage: np.ndarray
    brand: np.ndarray
    quality: np.ndarray
    log_rel_price: np.ndarray  # log(price / type base price)
    companions: list[np.ndarray]
    by_stage: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (category, stage) -> items
    stages: dict[int, list[int]] = field(default_factory=dict)  # category -> its stages, ascending

    @classmethod
    def build(cls, cfg: SyntheticConfig, world: World, name: str, rng: np.random.Generator) -> Shop:
        n = cfg.n_items
        code = name.removeprefix("shop-").upper()
        category = np.arange(n) % cfg.n_categories
        slot = np.arange(n) // cfg.n_categories  # round-robin over types: every stage appears early
        order = rng.permutation(n)  # item ids do not reveal the category
        category, slot = category[order], slot[order]
        items, stage, brand, rel = [], np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n)
        titles: set[str] = set()
        for j in range(n):
            c = int(category[j])
            ptype = world.types[c][int(slot[j]) % len(world.types[c])]
            b = _pick_brand(world, int(world.departments[c]), rng)
            record, rel[j] = _item_record(f"{code}{j:05d}", world, c, ptype, b, titles, rng)
            items.append(record)
            stage[j], brand[j] = ptype.stage, b
        shop = cls(cfg, world, name, items, category, stage, brand, rng.normal(0.0, 0.7, n), rel, [])
        for key in {(int(c), int(s)) for c, s in zip(category, stage, strict=True)}:
            shop.by_stage[key] = np.flatnonzero((category == key[0]) & (stage == key[1]))
        for c, st in sorted(shop.by_stage):
            shop.stages.setdefault(c, []).append(st)
        shop.companions = [shop._companions_of(j, rng) for j in range(n)]
        _describe(shop)
        return shop

    def _companions_of(self, j: int, rng: np.random.Generator) -> np.ndarray:
        """Up to 3 accessories of item j: items of its category at the next stage, same brand first."""
        cands = self.by_stage.get((int(self.category[j]), int(self.stage[j]) + 1))
        if cands is None:
            return np.zeros(0, dtype=np.int64)
        same = (self.brand[cands] == self.brand[j]).astype(float)
        order = np.lexsort((rng.random(len(cands)), -same))
        return cands[order[:3]]

    def simulate(self, people: People, members: list[int], rng: np.random.Generator
                 ) -> tuple[list[UserRecord], list[EventRecord]]:
        """The members' user records and their events on this shop, in time order."""
        users = [UserRecord(user_id=people.ids[q], attributes={"country": people.country[q]}) for q in members]
        rows: list[tuple[float, int, int, int, EventType, float | None]] = []
        for q in members:
            rows.extend(self._user_events(people, q, rng))
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        events = [
            EventRecord(user_id=people.ids[q], item_id=self.items[j].item_id, event_type=kind, timestamp=ts,
                        value=value, session_id=f"{self.name}-{people.ids[q]}-{s}")
            for ts, q, s, j, kind, value in ((r[0], r[1], r[2] >> 8, r[3], r[4], r[5]) for r in rows)
        ]
        return users, events

    def _user_events(self, people: People, q: int, rng: np.random.Generator) -> list[tuple]:
        """All events of person q on this shop: (time, person, session << 8 | seq, item, type, value)."""
        cfg = self.cfg
        max_sessions = int(cfg.days * 86400 // SLOT_SECONDS) - 1
        n_sessions = min(1 + rng.poisson(people.activity[q] * (cfg.sessions_per_user - 1)), max_sessions)
        span = cfg.days * 86400 - n_sessions * SLOT_SECONDS
        starts = cfg.start_time + np.sort(rng.uniform(0, span, n_sessions)) + np.arange(n_sessions) * SLOT_SECONDS
        bought: dict[int, int] = {}  # category -> highest stage bought
        last: int | None = None
        rows: list[tuple] = []
        for s, t0 in enumerate(starts):
            cands, boost = self._session_candidates(people, q, bought, last, rng)
            events, purchase = self._session(people, q, cands, boost, float(np.floor(t0)), rng)
            rows.extend((ts, q, (s << 8) | k, j, kind, value) for k, (ts, j, kind, value) in enumerate(events))
            if purchase is not None:
                c = int(self.category[purchase])
                bought[c] = max(bought.get(c, -1), int(self.stage[purchase]))
                last = purchase
        return rows

    def _session_candidates(self, people: People, q: int, bought: dict[int, int], last: int | None,
                            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Items the session looks at, and a utility boost (accessories of the last purchase)."""
        if last is not None and len(self.companions[last]) and rng.random() < self.cfg.p_follow_up:
            c, stage = int(self.category[last]), int(self.stage[last]) + 1
            cands = self.by_stage[(c, stage)]
            return cands, 2.0 * (cands[:, None] == self.companions[last][None, :]).any(axis=1)
        c = min(int(np.searchsorted(people.taste_cdf[q], rng.random(), side="right")), len(self.stages) - 1)
        stages = self.stages[c]
        nxt = bought.get(c, -1) + 1
        if nxt in stages and rng.random() < 0.8:
            stage = nxt
        else:
            stage = stages[int(rng.integers(len(stages)))]
        cands = self.by_stage[(c, stage)]
        return cands, np.zeros(len(cands))

    def _session(self, people: People, q: int, cands: np.ndarray, boost: np.ndarray, t: float,
                 rng: np.random.Generator) -> tuple[list[tuple[float, int, EventType, float | None]], int | None]:
        """Views, then maybe cart -> purchase -> rating. Returns the events and the purchased item."""
        cfg = self.cfg
        util = (people.brand_affinity[q, self.brand[cands]] + self.quality[cands]
                - people.price_sensitivity[q] * self.log_rel_price[cands] + boost)
        n_views = min(int(rng.geometric(0.4)), len(cands), MAX_VIEWS)
        # sampling without replacement with probabilities ~ exp(util): the top keys of util + Gumbel noise
        picked = np.argsort(-(util + rng.gumbel(size=len(cands))))[:n_views]
        times = t + np.cumsum(rng.integers(10, 180, size=n_views)).astype(float)
        events: list[tuple[float, int, EventType, float | None]] = [
            (ts, j, EventType.VIEW, None) for ts, j in zip(times.tolist(), cands[picked].tolist(), strict=True)]
        t = events[-1][0]
        best = int(picked[np.argmax(util[picked] + rng.gumbel(size=n_views))])
        item = int(cands[best])
        if rng.random() >= cfg.p_cart:
            return events, None
        t += float(rng.integers(5, 60))
        events.append((t, item, EventType.CART, None))
        if rng.random() >= cfg.p_purchase:
            return events, None
        t += float(rng.integers(30, 600))
        events.append((t, item, EventType.PURCHASE, None))
        if rng.random() < cfg.p_rating:
            stars = float(np.clip(np.rint(3.5 + util[best] - util.mean() + rng.normal(0, 0.8)), 1, 5))
            events.append((t + float(rng.integers(60, 900)), item, EventType.RATING, stars))
        return events, item


def _pick_brand(world: World, dept: int, rng: np.random.Generator) -> int:
    makers = [b for b, depts in enumerate(world.brand_departments) if dept in depts]
    return int(rng.choice(makers)) if makers else int(rng.integers(len(world.brands)))


def _item_record(item_id: str, world: World, c: int, ptype: _Type, b: int, titles: set[str],
                 rng: np.random.Generator) -> tuple[ItemRecord, float]:
    """One catalog item with a readable, (almost always) unique title; returns it and log(price / base)."""
    for _ in range(8):
        adjective = ptype.adjectives[int(rng.integers(len(ptype.adjectives)))]
        v = int(rng.integers(len(ptype.variants)))
        title = f"{world.brands[b]} {adjective} {ptype.noun}, {ptype.variants[v]}"
        if title not in titles:
            break
    titles.add(title)
    raw = ptype.price * world.brand_tier[b] * (1.0 + 0.2 * v) * math.exp(rng.normal(0.0, 0.12))
    price = max(round(raw) - 0.01, 0.99)
    attributes = {"type": ptype.noun, "stage": ptype.stage, "variant": ptype.variants[v],
                  "adjective": adjective}
    record = ItemRecord(item_id=item_id, title=title, category=world.categories[c], brand=world.brands[b],
                        price=price, currency="EUR", available=bool(rng.random() > 0.03), attributes=attributes)
    return record, math.log(price / ptype.price)


def _describe(shop: Shop) -> None:
    """Descriptions name the item's accessories' types, so text models can see the purchase order."""
    for j, item in enumerate(shop.items):
        attrs = item.attributes
        text = f"{attrs['adjective']} {str(attrs['type']).lower()} by {item.brand}, {attrs['variant']}."
        nouns = sorted({str(shop.items[int(k)].attributes["type"]).lower() for k in shop.companions[j]})
        if nouns:
            text += f" Goes well with: {', '.join(nouns)}."
        item.description = f"{text} Part of our {item.category.split(' > ')[-1].lower()} range."
