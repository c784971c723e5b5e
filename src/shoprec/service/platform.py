"""Platforms and API keys: create a platform with a fresh key (stored hashed), authenticate a key.

A key is 32 random bytes (url-safe text, prefixed "sk_"); only its SHA-256 digest is stored, so a
database dump reveals no key. The admin key (SHOPREC_ADMIN_KEY) acts on any platform it names.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from shoprec.errors import DataError
from shoprec.service.cache import Cache
from shoprec.storage import find_platform, get_or_create_platform, storage_errors
from shoprec.storage.serving import ServingRepo, platform_for_key

KEY_PREFIX = "sk_"
AUTH_TTL_S = 30.0  # a revoked key may still be accepted this long by a worker that cached it


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the platform of a platform key, or the admin (platform None)."""

    platform: str | None
    admin: bool = False


class PlatformService:
    def __init__(self, engine: Engine, cache: Cache, admin_key: str | None = None) -> None:
        self.engine, self.cache, self.admin_key = engine, cache, admin_key

    def create(self, name: str) -> str:
        """Create platform `name` with a new API key and return the key (shown once). A platform that
        exists already gets an additional key."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        with storage_errors(self.engine, f"create platform {name!r}"), self.engine.begin() as conn:
            platform_id = get_or_create_platform(conn, name, now)
            ServingRepo(conn, platform_id).add_api_key(hash_key(key), now)
        return key

    def authenticate(self, key: str | None) -> Principal | None:
        """The principal of `key`, or None for a missing or unknown key."""
        if not key:
            return None
        if self.admin_key and hmac.compare_digest(key.encode(), self.admin_key.encode()):
            return Principal(platform=None, admin=True)
        digest = hash_key(key)
        cache_key = f"auth:{digest}"
        platform = self.cache.get(cache_key)
        if platform is None:
            with storage_errors(self.engine, "check an API key"), self.engine.connect() as conn:
                platform = platform_for_key(conn, digest)
            if platform is None:
                return None
            self.cache.set(cache_key, platform, AUTH_TTL_S)
        return Principal(platform=str(platform))

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
