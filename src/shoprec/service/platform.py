"""Platforms and API keys: create a platform with a fresh key (stored hashed), authenticate a key,
create, list, revoke and rotate a platform's keys.

A key is 32 random bytes (url-safe text, prefixed "sk_"); only its SHA-256 digest is stored, so a
database dump reveals no key. Each key also has a public id ("key_" + 16 hex digits) to list and revoke
it by, and a set of scopes: `read` (GET), `write` (every other method), `admin` (key management), `train`
(enqueue training jobs and cancel jobs: training costs the deployment's CPU or GPU hours, so a `write` key
cannot train unless it also holds `train`), `events` (POST /v1/events and nothing else: the key a storefront
page may show to every visitor for the browser tracker; `write` includes it). `platform create` makes a key
with every scope; migration 0009 gave `train` to the platforms' full keys of before (see its
docstring).
The admin key (SHOPREC_ADMIN_KEY) acts on any platform it names, with every scope.
Key creation and revocation and platform creation are written to the audit log in the same transaction.

Revocation reaches every worker within a second, with or without Redis, whether the CLI or the API revoked:
each worker asks the database at most every REVOCATION_CHECK_S how many keys exist and how many are revoked
(`key_generation`: one query over the small api_keys table, made in a worker thread); a cached lookup is
tagged with that answer and a changed one makes it unused. The revoking process also deletes the key's cached
lookup (with Redis: every worker's at once).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from shoprec.errors import DataError
from shoprec.service.audit import record_audit
from shoprec.service.cache import Cache
from shoprec.service.errors import NotFound
from shoprec.storage import Engine, find_platform, get_or_create_platform, storage_errors
from shoprec.storage.serving import ServingRepo, key_generation, platform_for_key
from shoprec.storage.tables import MAX_KEY_NAME_LENGTH

KEY_PREFIX = "sk_"
KEY_ID_PREFIX = "key_"
AUTH_TTL_S = 30.0  # how long a key's lookup is cached (a revocation is seen sooner: REVOCATION_CHECK_S)
REVOCATION_CHECK_S = 0.5  # how often a worker asks the database whether any key was revoked (or deleted)
SCOPES = ("read", "write", "admin", "train", "events")
EVENTS_SCOPE = "events"  # POST /v1/events only (shoprec.api.auth.EVENTS_ROUTES); a `write` key holds it too
DEFAULT_KEY_SCOPES = ("read", "write", "admin")  # a new key's scopes when none are named: `train` is asked for
ADMIN_ACTOR = "admin"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_scopes(scopes: str | Iterable[str]) -> frozenset[str]:
    """A set of scopes from "read,write" or an iterable; DataError naming an unknown or missing scope."""
    names = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    found = frozenset(n.strip().lower() for n in names if n.strip())
    unknown = sorted(found - set(SCOPES))
    if unknown:
        raise DataError(f"unknown scope {unknown[0]!r} (scopes are {', '.join(SCOPES)})")
    if not found:
        raise DataError(f"a key needs at least one scope ({', '.join(SCOPES)})")
    return found


def format_scopes(scopes: Iterable[str]) -> str:
    """Scopes in canonical order, comma-separated (how they are stored)."""
    chosen = set(scopes)
    return ",".join(s for s in SCOPES if s in chosen)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the platform, public key id and scopes of a platform key, or the deployment admin
    (platform None, every scope)."""

    platform: str | None
    admin: bool = False
    key_id: str | None = None
    scopes: frozenset[str] = frozenset()

    def allows(self, scope: str) -> bool:
        """Whether the key holds `scope` (`write` includes `events`)."""
        return self.admin or scope in self.scopes or (scope == EVENTS_SCOPE and "write" in self.scopes)

    @property
    def actor(self) -> str:
        """How the audit log names this caller (never the key itself)."""
        return ADMIN_ACTOR if self.admin else str(self.key_id)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A platform's API key as listed (never the secret)."""

    key_id: str
    name: str | None
    scopes: list[str]
    created_at: float
    revoked: bool
    revoked_at: float | None


@dataclass(frozen=True)
class NewKey:
    """A key just created: `key` is the secret, shown this once."""

    platform: str
    key_id: str
    key: str
    scopes: tuple[str, ...]
    name: str | None
    created_at: float


class PlatformService:
    def __init__(self, engine: Engine, cache: Cache, admin_key: str | None = None) -> None:
        self.engine, self.cache, self.admin_key = engine, cache, admin_key
        self._generation = ""  # the keys' state when last checked (key_generation)
        self._checked_at = -1e18  # time.monotonic() of that check
        self._lock = threading.Lock()

    def keys_stale(self) -> bool:
        """Whether the keys' revocation state is due to be read again (then authenticate(cached_only=True)
        answers None, and the caller asks again in a worker thread)."""
        return time.monotonic() - self._checked_at >= REVOCATION_CHECK_S

    def check_revocations(self, force: bool = False) -> str:
        """Read the keys' generation from the database when stale (or forced); returns it."""
        if force or self.keys_stale():
            with self._lock:
                if force or self.keys_stale():
                    with storage_errors(self.engine, "check for revoked API keys"), self.engine.connect() as conn:
                        self._generation = key_generation(conn)
                    self._checked_at = time.monotonic()
        return self._generation

    def create(self, name: str, *, actor: str = ADMIN_ACTOR) -> str:
        """Create platform `name` with a new key holding every scope and return the key (shown once).
        A platform that exists already gets an additional key."""
        return self._create_key(name, SCOPES, None, actor, create_platform=True).key

    def create_key(self, platform: str, scopes: str | Iterable[str] = SCOPES, name: str | None = None, *,
                   actor: str = ADMIN_ACTOR) -> NewKey:
        """A new key for the existing platform `platform` (DataError when unknown or for bad scopes/name)."""
        return self._create_key(platform, parse_scopes(scopes), name, actor, create_platform=False)

    def _create_key(self, platform: str, scopes: Iterable[str], name: str | None, actor: str, *,
                    create_platform: bool) -> NewKey:
        if name is not None and not 1 <= len(name) <= MAX_KEY_NAME_LENGTH:
            raise DataError(f"key name must be 1..{MAX_KEY_NAME_LENGTH} characters, got {len(name)}")
        key, key_id = KEY_PREFIX + secrets.token_urlsafe(32), KEY_ID_PREFIX + secrets.token_hex(8)
        stored = format_scopes(scopes)
        now = time.time()
        with storage_errors(self.engine, f"create a key for platform {platform!r}"), self.engine.begin() as conn:
            platform_id = find_platform(conn, platform)
            if platform_id is None:
                if not create_platform:
                    raise DataError(f"unknown platform {platform!r}")
                platform_id = get_or_create_platform(conn, platform, now)
                record_audit(conn, platform_id=platform_id, action="platform.create", actor=actor, subject=platform)
            ServingRepo(conn, platform_id).add_api_key(hash_key(key), now, key_id=key_id, scopes=stored, name=name)
            record_audit(conn, platform_id=platform_id, action="key.create", actor=actor, subject=key_id,
                         details={"scopes": stored, "name": name})
        return NewKey(platform, key_id, key, tuple(stored.split(",")), name, now)

    def list_keys(self, platform: str) -> list[KeyInfo]:
        """Every key of the platform (never the secret): key_id, name, scopes (list), created_at, revoked,
        revoked_at."""
        platform_id = self.platform_id(platform)
        with storage_errors(self.engine, f"list the keys of platform {platform!r}"), self.engine.connect() as conn:
            rows = ServingRepo(conn, platform_id).list_api_keys()
        return [KeyInfo(r["key_id"], r["name"], r["scopes"].split(","), r["created_at"], bool(r["revoked"]),
                        r["revoked_at"]) for r in rows]

    def revoke_key(self, platform: str, key_id: str, *, actor: str = ADMIN_ACTOR) -> None:
        """Revoke key `key_id` of `platform` (NotFound when it has no such key; revoking twice is a no-op).

        This process rejects the key at once, every other worker within REVOCATION_CHECK_S (with or without
        Redis)."""
        platform_id = self.platform_id(platform)
        with storage_errors(self.engine, f"revoke key {key_id!r}"), self.engine.begin() as conn:
            digest = ServingRepo(conn, platform_id).revoke_api_key(key_id, time.time())
            if digest is None:
                raise NotFound(f"no key {key_id!r} on platform {platform!r}")
            record_audit(conn, platform_id=platform_id, action="key.revoke", actor=actor, subject=key_id)
        self.cache.delete(f"auth:{digest}")  # with Redis: every worker, at once
        self.check_revocations(force=True)

    def rotate_key(self, platform: str, key_id: str, *, actor: str = ADMIN_ACTOR) -> NewKey:
        """Replace key `key_id` by a new key with the same scopes and name, then revoke the old one."""
        old = next((k for k in self.list_keys(platform) if k.key_id == key_id), None)
        if old is None:
            raise NotFound(f"no key {key_id!r} on platform {platform!r}")
        new = self.create_key(platform, old.scopes, old.name, actor=actor)
        self.revoke_key(platform, key_id, actor=actor)
        return new

    def authenticate(self, key: str | None, cached_only: bool = False) -> Principal | None:
        """The principal of `key`, or None for a missing, unknown or revoked key. With `cached_only`, None
        also when the answer is not in the cache yet (the caller then asks again without it: the API's
        event loop answers from the cache and leaves the database read to a worker thread)."""
        if not key:
            return None
        if self.admin_key and hmac.compare_digest(key.encode(), self.admin_key.encode()):
            return Principal(platform=None, admin=True, key_id=ADMIN_ACTOR, scopes=frozenset(SCOPES))
        digest = hash_key(key)
        if cached_only and (self.cache.shared or self.keys_stale()):
            return None  # Redis is a network call too, and so is the revocation check
        generation = self.check_revocations()  # before the key is read: a lookup is never newer than its tag
        cache_key = f"auth:{digest}"
        found = self.cache.get(cache_key)
        if found is not None and (len(found) != 4 or found[3] != generation):
            found = None  # cached before a revocation this worker has seen since
        if found is None and cached_only:
            return None
        if found is None:
            with storage_errors(self.engine, "check an API key"), self.engine.connect() as conn:
                row = platform_for_key(conn, digest)
            if row is None:
                return None
            found = [*row, generation]
            self.cache.set(cache_key, found, AUTH_TTL_S)
        platform, key_id, scopes, _ = found
        return Principal(platform=str(platform), key_id=str(key_id), scopes=frozenset(str(scopes).split(",")))

    def platform_id(self, name: str) -> int:
        """The key of an existing platform (DataError when unknown)."""
        cache_key = f"platform:{name}"
        key = self.cache.get(cache_key)
        if key is None:
            with storage_errors(self.engine, f"find platform {name!r}"), self.engine.connect() as conn:
                key = find_platform(conn, name)
            if key is None:
                raise DataError(f"unknown platform {name!r}")
            self.cache.set(cache_key, key, 3600.0)
        return int(key)
