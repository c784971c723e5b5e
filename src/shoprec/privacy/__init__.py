"""Privacy: keyed identity hashes and pseudonymised user ids, erasure, export, retention, platform links.

    privacy = Privacy.from_settings(Settings.from_env())     # SHOPREC_SECRET_KEY, _PSEUDONYMIZE_USERS, _RETENTION_DAYS
    privacy.identity_hash(Identity("email", " Ann@Shop.com"))  # HMAC-SHA256 hex of "email:ann@shop.com"
    services.privacy.erase("shop-a", "user-1")                # everything naming the user, at once
    linked_user_pairs(conn, "shop-a", "shop-b")               # shoprec.storage.privacy: [] without consent
"""

from shoprec.privacy.keys import IDENTITY_TYPES, Privacy, normalise_identity

__all__ = ["IDENTITY_TYPES", "Privacy", "normalise_identity"]
