"""The privacy service: erasure, export, retention purge and platform links (consents).

Erasure removes, at once, everything that names a user of a platform: the user row, events, identity
hashes, recommendation-log rows and their feedback (one database transaction), the user's entry and
rows in every stored model artifact of the platform (rewritten through the artifact store, swapped in the
model registry in the same transaction; the old artifact is deleted with it in the database store, right
after the commit elsewhere, and replicas drop their cached copies when they load the new one), the cached
history and cached lists (Redis or in process), and the served model (reloaded from the rewritten
artifact). The platform is flagged for retraining and an audit record names the user by a keyed hash only.
Erasing a user that nothing names is NotFound.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shoprec.errors import ConfigError, DataError
from shoprec.privacy.artifacts import erase_users, users_in_artifact
from shoprec.privacy.keys import Privacy
from shoprec.service.artifacts import ArtifactRef, ArtifactStore
from shoprec.service.audit import record_audit
from shoprec.service.errors import ArtifactError, NotFound
from shoprec.service.platform import PlatformService
from shoprec.storage import Engine, list_platforms, storage_errors
from shoprec.storage.privacy import PrivacyRepo, link_state

if TYPE_CHECKING:
    from shoprec.service.catalog import CatalogViews
    from shoprec.service.models import ServedModels
    from shoprec.service.reclog import RecommendationLog
    from shoprec.service.state import UserStates
    from shoprec.storage.repo import Executor

log = logging.getLogger(__name__)
DAY_S = 86_400.0


@dataclass
class Hooks:
    """The online state an erasure must clear (absent in the CLI, which has no caches of its own)."""

    users: UserStates | None = None
    reclog: RecommendationLog | None = None
    models: ServedModels | None = None
    catalogs: CatalogViews | None = None  # popularity counts the user's events were part of


@dataclass(frozen=True, slots=True)
class Erasure:
    """What erasing a user removed: rows deleted per table, model artifacts rewritten without the user."""

    platform: str
    erased: bool
    deleted: dict[str, int]
    artifacts_rewritten: int
    retrain_flagged: bool


@dataclass(frozen=True, slots=True)
class Purge:
    """A retention run: the period, the cut-off (unix seconds) and the events deleted per platform."""

    days: float
    before: float
    purged: dict[str, int]


@dataclass(frozen=True, slots=True)
class LinkState:
    """Two platforms' consents after a link/unlink; `changed`: this call changed the platform's consent."""

    platform: str
    partner: str
    consent: bool
    partner_consent: bool
    linked: bool
    changed: bool


class PrivacyService:
    def __init__(self, engine: Engine, platforms: PlatformService, privacy: Privacy, hooks: Hooks | None = None,
                 *, artifacts: ArtifactStore) -> None:
        """`artifacts`: the deployment's artifact store, which erasure reads and rewrites model artifacts
        through."""
        self.engine, self.platforms, self.privacy = engine, platforms, privacy
        self.hooks = hooks or Hooks()
        self.artifacts = artifacts

    # ---------------------------------------------------------------- erasure
    def erase(self, platform: str, user_id: str, actor: str = "cli") -> Erasure:
        """Erase user `user_id` (the caller's id) of `platform`; returns counts of what was removed."""
        stored = self.privacy.user_id(platform, user_id)
        platform_id = self.platforms.platform_id(platform)
        if self.hooks.reclog is not None:
            self.hooks.reclog.flush()  # queued lists naming the user reach the database, to be deleted with it
        artifacts = self.artifacts
        written: list[tuple[ArtifactRef, ArtifactRef]] = []  # (old, new) artifacts
        try:
            with storage_errors(self.engine, "erase a user"), self.engine.begin() as conn:
                repo = PrivacyRepo(conn, platform_id)
                if repo.user_key(stored) is None:  # another platform's user id (or one erased before): touch
                    raise NotFound(f"no user {user_id!r} on platform {platform!r}")  # nothing of this one
                erased = repo.erase_user(stored)
                for model_id, path, sha in repo.model_paths():
                    old = ArtifactRef(path, sha)
                    new = _erase_artifact(artifacts, platform, platform_id, model_id, old, stored, conn)
                    if new is not None:
                        written.append((old, new))
                        repo.set_model_path(model_id, new.uri, new.sha256)
                        if old.kind == "database":  # its rows go in this transaction: no copy outlives it
                            artifacts.delete(old, conn=conn)
                if erased is None and not written:
                    raise NotFound(f"no user {user_id!r} on platform {platform!r}")
                now = time.time()
                repo.flag_retrain("user erased", now)
                counts = erased["deleted"] if erased else {}
                record_audit(conn, platform_id=platform_id, action="user.erase", actor=actor,
                             subject=self.privacy.subject(platform, user_id),
                             details={"deleted": counts, "artifacts_rewritten": len(written)})
        except BaseException:
            for _, new in written:
                try:
                    artifacts.delete(new)
                except Exception as exc:  # the original error matters more
                    log.warning("erasure rolled back: cannot remove the rewritten artifact %s: %s", new.uri, exc)
            raise
        for old, _ in written:
            artifacts.delete(old)  # directory and object-store copies (and this machine's cached copy)
        self._clear_online_state(platform, stored, erased["recommendation_ids"] if erased else [])
        return Erasure(platform, True, counts, len(written), True)

    def _clear_online_state(self, platform: str, stored: str, rec_ids: list[str]) -> None:
        hooks = self.hooks
        if hooks.users is not None:
            hooks.users.invalidate(platform, {stored})
        if hooks.reclog is not None and rec_ids:
            hooks.reclog.forget(platform, rec_ids)
        if hooks.models is not None:
            hooks.models.refresh(platform, wait=True)
        if hooks.catalogs is not None:
            hooks.catalogs.recount(platform)

    # ---------------------------------------------------------------- export
    def export(self, platform: str, user_id: str) -> dict[str, Any]:
        """Everything held about a user: attributes, events, identity hashes with the platforms linked through
        them, served lists and feedback. Ids are the caller's; the stored pseudonym is shown when one is used."""
        stored = self.privacy.user_id(platform, user_id)
        with storage_errors(self.engine, "export a user"), self.engine.connect() as conn:
            repo = PrivacyRepo(conn, self.platforms.platform_id(platform))
            data = repo.export_user(stored)
            if data is None:
                raise NotFound(f"no user {user_id!r} on platform {platform!r}")
            hashes = [i["identity_hash"] for i in data["identities"]]
            linked = repo.linked_platforms_holding(hashes)
            retrain = repo.retrain_flag()
        out: dict[str, Any] = {"platform": platform, "user_id": user_id, **data}
        if stored != user_id:
            out["stored_user_id"] = stored
        out["identities"] = [{"type": i["identity_type"], "hash": i["identity_hash"], "created_at": i["created_at"],
                              "linked_platforms": linked.get(i["identity_hash"], [])} for i in data["identities"]]
        out["models_pending_retrain"] = retrain is not None
        return out

    # ---------------------------------------------------------------- retention
    def purge(self, platform: str | None = None, days: float | None = None, now: float | None = None
              ) -> Purge:
        """Delete events older than `days` (default: the retention setting) of one platform or of all."""
        days = self.privacy.retention_days if days is None else days
        if days is None:
            raise ConfigError("no retention period: set SHOPREC_RETENTION_DAYS (or pass --days)")
        if not days > 0:
            raise ConfigError(f"the retention period must be a positive number of days, got {days}")
        before = (time.time() if now is None else now) - days * DAY_S
        with storage_errors(self.engine, "list platforms"), self.engine.connect() as conn:
            names = list_platforms(conn)
        if platform is not None:
            if platform not in names:
                raise DataError(f"unknown platform {platform!r}")
            names = {platform: names[platform]}
        purged: dict[str, int] = {}
        for name, key in names.items():
            with storage_errors(self.engine, f"purge old events of platform {name!r}"), self.engine.begin() as conn:
                purged[name] = PrivacyRepo(conn, key).purge_events(before)
        if any(purged.values()):
            log.info("retention: purged %d events older than %.1f days", sum(purged.values()), days)
        return Purge(days, before, purged)

    # ---------------------------------------------------------------- links
    def link(self, platform: str, partner: str, actor: str = "cli") -> LinkState:
        """Record `platform`'s consent to link with `partner`; the link holds once both consented."""
        return self._consent(platform, partner, actor, give=True)

    def unlink(self, platform: str, partner: str, actor: str = "cli") -> LinkState:
        """Withdraw `platform`'s consent: the link ends at once (nothing crosses from then on)."""
        return self._consent(platform, partner, actor, give=False)

    def _consent(self, platform: str, partner: str, actor: str, *, give: bool) -> LinkState:
        if platform == partner:
            raise DataError(f"a platform cannot be linked with itself ({platform!r})")
        pid, qid = self.platforms.platform_id(platform), self.platforms.platform_id(partner)
        with storage_errors(self.engine, "record a platform link"), self.engine.begin() as conn:
            repo = PrivacyRepo(conn, pid)
            changed = repo.consent(qid, time.time()) if give else repo.withdraw(qid)
            if changed:
                record_audit(conn, platform_id=pid, action="platform.link" if give else "platform.unlink",
                             actor=actor, subject=partner)
            state = link_state(conn, platform, partner)
        return LinkState(platform, partner, state["a"], state["b"], state["a"] and state["b"], changed)


def _erase_artifact(artifacts: ArtifactStore, platform: str, platform_id: int, model_id: str, ref: ArtifactRef,
                    stored: str, conn: Executor) -> ArtifactRef | None:
    """The artifact rewritten without the user and stored (through the artifact store, in `conn` for the
    database store), or None when it does not hold the user (or cannot be read: it serves no one then)."""
    try:
        local = artifacts.fetch(ref)
    except ArtifactError as exc:
        log.warning("erasure: model %s of platform %r: artifact not rewritten: %s", model_id, platform, exc)
        return None
    if not (local / "idmaps.json").exists() or not users_in_artifact(local, [stored]):
        return None
    rewritten = erase_users(local, [stored])
    if rewritten is None:
        return None
    try:
        return artifacts.put(platform, model_id, rewritten, platform_id=platform_id, conn=conn)
    finally:
        shutil.rmtree(rewritten, ignore_errors=True)  # put moved it (directory store) or copied it
