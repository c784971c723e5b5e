"""Transfer between platforms: the training data of a platform, joined with what its linked users did on
another platform (`shoprec train --platform NEW --from-platform OLD`).

Only users linked by identity hash on a link BOTH platforms consented to (`shoprec platform link`,
shoprec.storage.privacy.linked_user_pairs) cross: their OLD events join the NEW data under their NEW user
id; nothing of OLD's other users is read into the result. OLD items keep their catalog content and become
"<OLD>:<item id>", a domain of their own for the `cross` model (its bridge users are the linked users with
events on both platforms). Serving maps a model's items onto the platform's catalog, so OLD items are
never recommended on NEW.

Fine-tuning (`shoprec train --platform NEW --model transformer --init-from MODEL_ID`): a transformer of OLD
(`init_source`) gives NEW's transformer its starting weights (shoprec.models.transformer.transfer_weights:
everything but the item ids; item text is the space both platforms share), then it trains on NEW's events
alone. The same rule holds: OLD must be linked with NEW by both sides' consent (or be NEW itself).

Pre-trained across shops (`--init-from DIR`, a directory of `shoprec pretrain`; shoprec.service.pretrain):
the same start from a multi-shop model; with `--zero-shot` nothing is trained: the model is carried over to
the platform's catalog and scores its items through their text (Transformer.carry_over), so a platform with
items and no events gets personalised session lists. A directory pre-trained from platforms names them:
each must be NEW or linked with NEW by both sides' consent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import DataError
from shoprec.service.artifacts import ArtifactRef
from shoprec.storage import Engine, find_platform, load_interactions, storage_errors
from shoprec.storage.privacy import PrivacyRepo, linked_user_pairs
from shoprec.storage.serving import ServingRepo

if TYPE_CHECKING:
    from shoprec.models.base import Recommender
    from shoprec.models.factory import ModelFactory
    from shoprec.models.transformer import Transformer


@dataclass(frozen=True)
class TransferData:
    """NEW's events plus the linked users' OLD events, and facts about the join for the model record."""

    interactions: Interactions
    catalog: ItemCatalog
    facts: dict[str, Any]


def linked_training_data(engine: Engine, platform: str, from_platform: str) -> TransferData:
    """The joined training data of `platform` (NEW) with its linked users' events on `from_platform` (OLD)."""
    if platform == from_platform:
        raise DataError(f"--from-platform must name another platform than {platform!r}")
    new, catalog = load_interactions(engine, platform)
    with storage_errors(engine, "read linked users"), engine.connect() as conn:
        pairs = linked_user_pairs(conn, from_platform, platform)
    if not pairs:
        raise DataError(f"no linked users between {from_platform!r} and {platform!r}: both platforms must consent "
                        f"(shoprec platform link {platform} {from_platform}) and their users send identities")
    old, old_catalog = load_interactions(engine, from_platform)
    to_new = dict(pairs)
    keep = np.fromiter((to_new.get(u) is not None for u in old.users.externals(old.user)), dtype=bool,
                       count=len(old))
    linked = old.subset(keep)
    users, items = new.users.copy(), new.items.copy()
    user = np.fromiter((users.add(to_new[u]) for u in linked.users.externals(linked.user)), dtype=np.int32,
                       count=len(linked))
    first_new = len(items)
    item = np.fromiter((items.add(f"{from_platform}:{i}") for i in linked.items.externals(linked.item)),
                       dtype=np.int32, count=len(linked))
    joined = Interactions(
        user=np.concatenate([new.user, user]), item=np.concatenate([new.item, item]), users=users, items=items,
        weight=np.concatenate([new.weight, linked.weight]), value=np.concatenate([new.value, linked.value]),
        timestamp=np.concatenate([new.timestamp, linked.timestamp]),
        event_type=np.concatenate([new.event_type, linked.event_type]))
    facts = {"from_platform": from_platform, "linked_users": len(to_new),
             "linked_users_with_events": len(np.unique(linked.user)), "events_from_platform": len(linked),
             "items_from_platform": len(items) - first_new, "events_own": len(new)}
    return TransferData(joined, joint_catalog(catalog, old_catalog, items, first_new, len(from_platform) + 1), facts)


def joint_catalog(own: ItemCatalog, other: ItemCatalog, items: IdMap, first_other: int, prefix: int) -> ItemCatalog:
    """`own`'s rows, then the content of `other`'s items that `items` holds from index `first_other` on
    (their ids carry a `prefix`-character platform prefix; every one of them is in `other`)."""
    src = [other.items.index(ext[prefix:]) for ext in items.to_list()[first_other:]]
    return ItemCatalog(items=items, title=[*own.title, *(other.title[r] for r in src)],
                       description=[*own.description, *(other.description[r] for r in src)],
                       category=[*own.category, *(other.category[r] for r in src)],
                       brand=[*own.brand, *(other.brand[r] for r in src)],
                       price=np.concatenate([own.price, other.price[src]]),
                       available=np.concatenate([own.available, other.available[src]]),
                       attributes=[*own.attributes, *(dict(other.attributes[r]) for r in src)],
                       attribute_ids=[*own.attribute_ids, *(other.attribute_ids[r] for r in src)])


@dataclass(frozen=True)
class InitSource:
    """A stored transformer to fine-tune from, the network parameters a model needs to start from it, and
    facts for the model record."""

    model: Transformer
    params: dict[str, Any]
    facts: dict[str, Any]

    @property
    def label(self) -> str:
        """How the model records its start: "<platform>/<model id>" or "pretrained:<directory>"."""
        if "init_platform" in self.facts:
            return f"{self.facts['init_platform']}/{self.facts['init_from']}"
        return f"pretrained:{self.facts['init_from']}"

    def start(self, zero_shot: bool = False) -> Callable[[Recommender], Recommender]:
        """What sets a fresh transformer to start from this model (`zero_shot`: carried over to its training
        data's items without training)."""
        label = self.label

        def start(model: Recommender) -> Recommender:
            return cast("Transformer", model).start_from(self.model, label, zero_shot=zero_shot)
        return start

    def factory(self, make: ModelFactory, zero_shot: bool = False) -> ModelFactory:
        """`make`'s configuration, each fresh transformer set to start from this model (see `start`)."""
        return make.starting_with(self.start(zero_shot))


def is_directory_source(init_from: str) -> bool:
    """Whether `--init-from` names a directory (a pre-trained model) rather than a stored model id."""
    from pathlib import Path

    return Path(init_from).expanduser().is_dir() or "/" in init_from or init_from.startswith(".")


def pretrained_source(path: str, engine: Engine | None = None, platform: str | None = None) -> InitSource:
    """The `shoprec pretrain` directory at `path` as a start (shoprec.models.transformer.pretrain.load_pretrained
    checks it). When it was pre-trained from platforms, `platform` must be one of them or linked with each by
    both sides' consent (a DataError names the missing link)."""
    from shoprec.models.transformer.pretrain import load_pretrained, network_params

    model, facts = load_pretrained(path)
    sources = [str(p) for p in facts.get("platforms") or []]
    if sources and engine is not None and platform is not None:
        with storage_errors(engine, "read platform links"), engine.connect() as conn:
            own = find_platform(conn, platform)
            linked = set(PrivacyRepo(conn, own).linked_platforms()) if own is not None else set()
        missing = [p for p in sources if p != platform and p not in linked]
        if missing:
            raise DataError(f"--init-from {path}: it was pre-trained on platform(s) {', '.join(missing)}, not linked "
                            f"with {platform!r} by both sides' consent (shoprec platform link {platform} OTHER, and "
                            f"OTHER {platform})")
    shops = [s.get("name") for s in facts.get("shops", [])]
    return InitSource(model, network_params(model), {"init_from": str(path), "pretrained": True,
                                                     "pretrained_shops": shops})


def resolve_source(engine: Engine, platform: str, init_from: str,
                   load: Callable[[str, str, ArtifactRef], Recommender] | None = None) -> InitSource:
    """`--init-from`: a pre-trained directory (pretrained_source) or a stored model id (init_source)."""
    if is_directory_source(init_from):
        return pretrained_source(init_from, engine, platform)
    return init_source(engine, platform, init_from, load)


def check_inherited(source: InitSource, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` over the source's network parameters; a ConfigError naming each network parameter that
    `params` set to another value than the source's (its weights would not fit)."""
    from shoprec.errors import ConfigError

    # max_len "auto" (the default) means the start model's length when there is one (Transformer._resolve_max_len)
    params = {k: v for k, v in params.items() if not (k == "max_len" and v == "auto")}
    wrong = [f"{k} = {params[k]!r} (the start model's: {v!r})" for k, v in source.params.items()
             if k in params and params[k] != v and k != "text_encoder"]
    if wrong:
        raise ConfigError(f"--init-from: the network parameters are the start model's; got {'; '.join(wrong)}")
    return {**source.params, **params}


def init_source(engine: Engine, platform: str, model_id: str,
                load: Callable[[str, str, ArtifactRef], Recommender] | None = None) -> InitSource:
    """Model `model_id` of `platform` or of a platform linked with it by both sides' consent, loaded; a
    DataError when there is none (the model of an unlinked platform is not read) or it is no transformer.
    `load(platform, model_id, ref)`: how an artifact is loaded (ModelStore.load_ref: through the artifact
    store); by default a directory artifact is read in place."""
    from shoprec.models.base import load_model
    from shoprec.models.transformer import Transformer
    from shoprec.models.transformer.pretrain import network_params

    with storage_errors(engine, "find the model to start from"), engine.connect() as conn:
        own = find_platform(conn, platform)
        linked = PrivacyRepo(conn, own).linked_platforms() if own is not None else []
        found = None
        for name in [platform, *linked]:
            key = find_platform(conn, name)
            row = ServingRepo(conn, key).get_model(model_id) if key is not None else None
            if row is not None:
                found = (name, row)
                break
    if found is None:
        raise DataError(f"--init-from: no model {model_id!r} on platform {platform!r} or on a platform linked with "
                        f"it (linked: {', '.join(linked) or 'none'}); both platforms must consent "
                        f"(shoprec platform link {platform} OTHER, and OTHER {platform})")
    name, row = found
    if row["name"] != "transformer":
        raise DataError(f"--init-from: model {model_id!r} of platform {name!r} is a {row['name']!r} model; "
                        "fine-tuning starts from a 'transformer' model")
    pretrained_on = [str(p) for p in ((row.get("config") or {}).get("pretrain") or {}).get("platforms") or []]
    missing = [p for p in pretrained_on if p != platform and p not in linked]
    if missing:  # a model pre-trained across platforms (job "pretrain") carries what each of them taught it
        raise DataError(f"--init-from: model {model_id!r} was pre-trained on platform(s) {', '.join(missing)}, not "
                        f"linked with {platform!r} by both sides' consent (shoprec platform link {platform} OTHER, "
                        f"and OTHER {platform})")
    ref = ArtifactRef(str(row["path"]), row.get("sha256"))
    model = load(name, model_id, ref) if load is not None else load_model(ref.uri)
    assert isinstance(model, Transformer)
    return InitSource(model, network_params(model), {"init_from": model_id, "init_platform": name})
