"""Transfer (`shoprec train --platform new --from-platform old`): only linked users' behaviour crosses, and only
over a link both platforms consented to; the joined model is stored with what crossed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shoprec.data.records import EventRecord, Identity, UserRecord
from shoprec.errors import DataError
from shoprec.ingest.pipeline import ingest
from shoprec.models import load_model
from shoprec.service import Services, ServingConfig, build_services
from shoprec.service.testing import TEST_ADMIN_KEY
from shoprec.service.transfer import linked_training_data
from shoprec.settings import Settings
from shoprec.types import EventType

LINKED, OLD_ONLY, NEW_ONLY, OLD_EVENTS = 30, 10, 5, 4


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'shoprec.db'}", model_dir=tmp_path / "models",
                        secret_key="transfer-test-secret-0123")
    svc = build_services(settings, ServingConfig(admin_key=TEST_ADMIN_KEY, model_poll_s=0.0))
    yield svc
    svc.close()


def _events(user: str, items: list[str], now: float) -> list[EventRecord]:
    return [EventRecord(user, item, EventType.PURCHASE, now - 3600 * (len(items) - k)) for k, item in enumerate(items)]


@pytest.fixture
def two_platforms(services: Services) -> Services:
    """old: 30 users sharing an e-mail with a user of new, and 10 others who bought 'secret'; new: 35 users."""
    rng, now = np.random.default_rng(0), time.time()
    records: dict[str, list] = {"old": [], "new": []}
    for i in range(LINKED + OLD_ONLY):
        user, g = f"o{i}", i % 2
        identity = Identity("email", f"user{i}@example.test") if i < LINKED else None
        items = [f"g{g}-{k}" for k in rng.choice(8, OLD_EVENTS, replace=False)] if i < LINKED else ["secret"] * 2
        records["old"] += [UserRecord(user, identity=identity), *_events(user, items, now)]
    for i in range(LINKED + NEW_ONLY):
        user, g = f"n{i}", i % 2
        identity = Identity("email", f"user{i}@example.test") if i < LINKED else None
        items = [f"ng{g}-{k}" for k in rng.choice(6, 2, replace=False)]
        records["new"] += [UserRecord(user, identity=identity), *_events(user, items, now)]
    for name, recs in records.items():
        services.platforms.create(name)
        ingest(services.engine, name, recs, privacy=services.privacy.privacy)
    return services


def test_nothing_crosses_without_both_consents(two_platforms: Services) -> None:
    two_platforms.privacy.link("new", "old")  # one side only
    with pytest.raises(DataError, match="both platforms must consent"):
        two_platforms.store.train("new", "cross", from_platform="old", evaluate=False)
    with pytest.raises(DataError, match="another platform"):
        linked_training_data(two_platforms.engine, "new", "new")


def test_linked_users_old_events_join_under_their_new_ids(two_platforms: Services) -> None:
    two_platforms.privacy.link("new", "old")
    two_platforms.privacy.link("old", "new")
    joined = linked_training_data(two_platforms.engine, "new", "old")
    data = joined.interactions
    assert joined.facts["linked_users"] == LINKED
    assert joined.facts["events_from_platform"] == LINKED * OLD_EVENTS
    assert joined.facts["events_own"] == 2 * (LINKED + NEW_ONLY)
    externals = data.items.to_list()
    assert "old:secret" not in externals and not any(u.startswith("o") for u in data.users.to_list())
    from_old = np.array([e.startswith("old:") for e in externals])[data.item]
    assert set(data.users.externals(np.unique(data.user[from_old]))) == {f"n{i}" for i in range(LINKED)}
    assert len(joined.catalog) == len(data.items)


def test_train_with_from_platform_stores_a_model_that_knows_what_crossed(two_platforms: Services) -> None:
    two_platforms.privacy.link("new", "old")
    two_platforms.privacy.link("old", "new")
    result = two_platforms.store.train("new", "cross", from_platform="old", evaluate=False)
    assert result.transfer["linked_users"] == LINKED and result.transfer["from_platform"] == "old"
    model = load_model(result.path)
    assert model.items is not None and "old:g0-0" in model.items and "ng0-0" in model.items
    assert model.training_log[0]["bridge_users"] == LINKED  # the linked users span both platforms
