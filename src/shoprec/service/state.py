"""A user's live state for the online path: recent history, purchases and dislikes, read from the
database and cached (in process with a short TTL, or in Redis and invalidated on every write).

One prepared query reads the user's newest MAX_EVENTS_READ events. The history holds positive events
only (those with a non-zero default weight: views, clicks, carts, purchases, likes...), oldest first,
at most `history_length` of them: this is Query.history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shoprec.preprocess.weights import DEFAULT_EVENT_WEIGHTS
from shoprec.service.cache import Cache
from shoprec.service.platform import PlatformService
from shoprec.storage import Engine, storage_errors
from shoprec.storage.serving import ServingRepo

POSITIVE_TYPES = frozenset(t for t, w in DEFAULT_EVENT_WEIGHTS.items() if w > 0)
MAX_EVENTS_READ = 1000  # purchases and dislikes older than a user's 1,000 newest events are not seen
SHARED_TTL_S = 600.0  # Redis entries are invalidated on writes; the TTL only bounds memory


@dataclass(frozen=True)
class UserState:
    history: tuple[str, ...] = ()  # item ids, oldest first
    history_types: tuple[str, ...] = ()
    history_times: tuple[float, ...] = ()  # unix seconds, one per history item (empty: unknown)
    purchased: frozenset[str] = frozenset()
    disliked: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {"h": list(self.history), "t": list(self.history_types), "s": list(self.history_times),
                "p": sorted(self.purchased), "d": sorted(self.disliked)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UserState:
        return cls(tuple(data["h"]), tuple(data["t"]), tuple(data.get("s", ())), frozenset(data["p"]),
                   frozenset(data["d"]))


def state_from_events(events: Sequence[tuple[str, str, float]], history_length: int) -> UserState:
    """A user's state from their newest events (item id, event type, unix seconds), oldest first: the history is
    the newest `history_length` positive ones (POSITIVE_TYPES), `purchased` every purchased item, `disliked` the
    items whose last like or dislike is a dislike. UserStates reads the events from the database; the in-process
    path (shoprec.service.local.states_from_events) from a snapshot of them."""
    positive = [(i, t, ts) for i, t, ts in events if t in POSITIVE_TYPES][-history_length:]
    opinion: dict[str, str] = {}
    for item, etype, _ in events:
        if etype in ("like", "dislike"):
            opinion[item] = etype
    return UserState(
        history=tuple(i for i, _, _ in positive), history_types=tuple(t for _, t, _ in positive),
        history_times=tuple(ts for _, _, ts in positive),
        purchased=frozenset(i for i, t, _ in events if t == "purchase"),
        disliked=frozenset(i for i, o in opinion.items() if o == "dislike"))


class UserStates:
    def __init__(self, engine: Engine, cache: Cache, platforms: PlatformService, history_length: int,
                 local_ttl: float) -> None:
        self.engine, self.cache, self.platforms = engine, cache, platforms
        self.history_length = history_length
        self.ttl = SHARED_TTL_S if cache.shared else local_ttl

    @staticmethod
    def _key(platform: str, user: str) -> str:
        return f"user:{platform}:{user}"

    def get(self, platform: str, user: str) -> UserState:
        key = self._key(platform, user)
        hit = self.cache.get(key)
        if hit is not None:
            return UserState.from_json(hit)
        state = self._load(platform, user)
        self.cache.set(key, state.to_json(), self.ttl)
        return state

    def _load(self, platform: str, user: str) -> UserState:
        with storage_errors(self.engine, f"read the history of user {user!r}"), self.engine.connect() as conn:
            events = ServingRepo(conn, self.platforms.platform_id(platform)).recent_events(user, MAX_EVENTS_READ)
        events.reverse()  # oldest first
        return state_from_events(events, self.history_length)

    def invalidate(self, platform: str, users: set[str]) -> None:
        self.cache.delete(*(self._key(platform, u) for u in users))
