"""Keyed hashes: identity hashes for linking platforms and pseudonymised user ids at rest.

Both are HMAC-SHA256 with the deployment secret (SHOPREC_SECRET_KEY), so a database dump reveals
neither the identities nor (with SHOPREC_PSEUDONYMIZE_USERS=1) the shops' user ids, and nobody without
the secret can test a guess. Identities are normalised first, so that "Ann@Shop.com " and
"ann@shop.com" (or "+49 170 1234-567" and "+491701234567") give the same hash on every platform.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from shoprec.data.records import Identity
from shoprec.errors import ConfigError, DataError
from shoprec.settings import Settings

IDENTITY_TYPES = ("email", "phone", "loyalty")
MAX_IDENTITY_LENGTH = 320
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
UNSET_SECRETS = frozenset({"", Settings.secret_key})  # the built-in development default counts as unset


def normalise_identity(identity: Identity) -> str:
    """ "type:normalised value": e-mail lower-case and trimmed; phone digits with a leading +; loyalty trimmed.
    DataError (field identity) for an unknown type or a value that is not an e-mail / phone number."""
    kind = identity.type
    if kind not in IDENTITY_TYPES:
        raise DataError(f"field identity.type must be one of {', '.join(IDENTITY_TYPES)}, got {kind!r}")
    value = identity.value.strip() if isinstance(identity.value, str) else ""
    if not value or len(value) > MAX_IDENTITY_LENGTH:
        raise DataError(f"field identity.value must be 1..{MAX_IDENTITY_LENGTH} characters")
    if kind == "email":
        value = value.lower()
        if not _EMAIL.match(value):
            raise DataError("field identity.value is not an e-mail address (name@domain)")
    elif kind == "phone":
        digits = re.sub(r"\D", "", value)
        digits = digits[2:] if digits.startswith("00") else digits  # 0049... is +49...
        if not 6 <= len(digits) <= 15 or re.search(r"[^\d\s+()./-]", value):
            raise DataError("field identity.value is not a phone number (6..15 digits, optionally + ( ) - . /)")
        value = "+" + digits
    return f"{kind}:{value}"


@dataclass(frozen=True)
class Privacy:
    """The deployment's privacy settings and its keyed hashes (secret None: identities are refused)."""

    secret: str | None = None
    pseudonymize: bool = False
    retention_days: float | None = None

    def __post_init__(self) -> None:
        if self.pseudonymize and not self.secret:
            raise ConfigError("SHOPREC_PSEUDONYMIZE_USERS needs SHOPREC_SECRET_KEY (the key of the user id hashes)")
        if self.retention_days is not None and not self.retention_days > 0:
            raise ConfigError(f"retention_days must be a positive number, got {self.retention_days}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Privacy:
        secret = None if settings.secret_key in UNSET_SECRETS else settings.secret_key
        return cls(secret, settings.pseudonymize_users, settings.retention_days)

    def _hmac(self, message: str, purpose: str) -> str:
        if not self.secret:
            raise ConfigError(f"{purpose} needs SHOPREC_SECRET_KEY to be set (identities are stored as keyed hashes "
                              "only, and none can be made without the secret)")
        return hmac.new(self.secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()

    def identity_hash(self, identity: Identity) -> str:
        """HMAC-SHA256(secret, "type:normalised value") as 64 hex characters."""
        return self._hmac(normalise_identity(identity), "an identity")

    def user_id(self, platform: str, user_id: str) -> str:
        """The id stored for `user_id` of `platform`: a per-platform keyed hash when pseudonymising, else itself."""
        if not self.pseudonymize:
            return user_id
        return self._hmac(f"user\x1f{platform}\x1f{user_id}", "pseudonymising user ids")

    def subject(self, platform: str, user_id: str) -> str:
        """A keyed hash naming a user in audit records (never the raw id)."""
        message = f"audit\x1f{platform}\x1f{user_id}"
        if self.secret:
            return "hmac:" + self._hmac(message, "an audit subject")[:32]
        return "sha256:" + hashlib.sha256(message.encode("utf-8")).hexdigest()[:32]
