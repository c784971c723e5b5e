"""Carrying a transformer over to a shop it was not trained on (zero-shot); what a fine-tuned model takes from
its start, and the start kept where fine-tuning validates below it.

Item ids are per shop; what shops share is the space of item text vectors (the same text encoder) and
attribute tokens that mean the same thing everywhere (brands "b:...", category paths "c:..."). A carried
model's item table is the content part alone:

    item(i) = mean(embeddings of i's attribute tokens the source knows) + W_text @ text(i) [+ W_title @ name_text(i)]

with the source's attribute embeddings and text projections (the names' one where the source has it); its
blocks, position, event and gap embeddings are the source's too (`transfer_weights`). The id embeddings exist
(the network's shape) but every item is marked untrained, so they are never read.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from shoprec.data import IdMap, Interactions, ItemCatalog
from shoprec.errors import ConfigError, DataError
from shoprec.models.base import RankingValidation
from shoprec.models.training import Dist, TrainOptions
from shoprec.models.transformer.config import CARRIED_TEXT_AFFINITY, NETWORK_PARAMS, TransformerConfig
from shoprec.models.transformer.content import ItemContent, build_content
from shoprec.models.transformer.network import SeqNet, transfer_weights
from shoprec.models.transformer.serving import Member

if TYPE_CHECKING:
    from shoprec.models.transformer.model import Transformer

log = logging.getLogger(__name__)
SHAPE_PARAMS = tuple(p for p in NETWORK_PARAMS if p != "text_encoder")  # "auto" and "minilm" may name one encoder


def check_network(source: TransformerConfig, cfg: TransformerConfig, label: str) -> None:
    """ConfigError naming every network parameter of `cfg` that differs from the start model's."""
    wrong = [f"{p} = {getattr(cfg, p)!r} (the start model's: {getattr(source, p)!r})"
             for p in SHAPE_PARAMS if getattr(cfg, p) != getattr(source, p)]
    if wrong:
        raise ConfigError(f"the network parameters must be those of the start model {label or ''} to carry it over; "
                          f"got {'; '.join(wrong)}")


def known_tokens(content: ItemContent, vocabulary: tuple[str, ...]) -> ItemContent:
    """`content` with each item's attribute bag cut to the tokens of `vocabulary` and indexed as there (row r of
    the start model's attribute table is token r - 1): unknown tokens would be untrained rows."""
    index = {t: i + 1 for i, t in enumerate(vocabulary)}
    own = np.array([0] + [index.get(t, 0) for t in content.vocabulary], dtype=np.int64)  # own index -> theirs
    bounds = np.append(content.attr_offsets, len(content.attr_flat))
    bags = [own[content.attr_flat[a:b]] for a, b in itertools.pairwise(bounds)]
    bags = [bag[bag > 0] for bag in bags]
    lengths = np.array([len(b) for b in bags], dtype=np.int64)
    flat = np.concatenate(bags) if bags else np.zeros(0, dtype=np.int64)
    return dataclasses.replace(content, attr_flat=flat.astype(np.int64), attr_offsets=np.cumsum(lengths) - lengths,
                               n_attributes=len(vocabulary), vocabulary=tuple(vocabulary))


def carried_content(source: SeqNet, content: ItemContent, label: str) -> ItemContent:
    """The target's content as the source reads it: attribute tokens it knows, text only where it reads text
    (of the same dimension: the same encoder); a DataError when no item is left with any content."""
    content = known_tokens(content, source.attribute_vocabulary if source.attributes is not None else ())
    n = len(content.attr_offsets)
    if source.text is None:
        content = dataclasses.replace(content, text=np.zeros((n, 0), dtype=np.float32))
    elif content.text.shape[1] and content.text.shape[1] != source.text.in_features:
        raise ConfigError(f"the start model {label or ''} reads {source.text.in_features}-dimensional item text "
                          "vectors; "
                          f"this catalog's are {content.text.shape[1]}-dimensional ({content.text_encoder}): "
                          "use the text encoder it was trained with (parameter text_encoder)")
    if not content.has_content[1:].any():
        raise DataError(f"zero-shot: no item of the catalog has text or an attribute the start model {label or ''} "
                        "knows, so none can be scored")
    return content


def carry_members(source: Transformer, label: str, cfg: TransformerConfig, items: IdMap,
                  catalog: ItemCatalog | None, options: TrainOptions) -> tuple[list[Member], dict[str, Any]]:
    """One carried network per member of `source`, for `items` with `catalog`'s content; and the record of
    what was copied (the model's `initialised_from`)."""
    assert source.fitted is not None
    network = source.network_config
    cfg = cfg.inheriting(network)
    check_network(network, cfg, label)
    content = build_content(catalog, items, cfg, options,
                            title_view=source.fitted.members[0].net.title_text is not None)  # as the source reads
    members, copied = [], []
    for member in source.fitted.members:
        src = member.net
        mine = carried_content(src, content, label)
        net = SeqNet(cfg, len(items), mine, trained=np.zeros(len(items) + 1, dtype=bool))
        copied = transfer_weights(src, net)
        members.append(Member.of(net))
    fresh = [name for name, _ in members[0].net.named_parameters() if name not in copied]
    return members, {"model": label, "zero_shot": True, "copied": copied, "fresh": fresh}


def carried_text_affinity(source_weight: float) -> float:
    """The text affinity of a model carried to a shop it never saw with text_affinity "auto": its source's weight,
    at least CARRIED_TEXT_AFFINITY (the source chose its weight beside a network that knew the source's items; on
    the new shop's the sentence encoder's similarity is what carries over)."""
    return max(float(source_weight), CARRIED_TEXT_AFFINITY)


def copy_attribute_rows(src: SeqNet, dst: SeqNet) -> int:
    """Fine-tuning: copy the attribute embedding rows of the tokens both networks know (a brand, a category
    path) when their vocabularies differ (equal ones are copied whole by `transfer_weights`); the others start
    fresh (so "attributes.weight" stays among the fresh weights). Returns the number of rows copied."""
    if src.attributes is None or dst.attributes is None or src.attribute_vocabulary == dst.attribute_vocabulary:
        return 0
    theirs = {t: i + 1 for i, t in enumerate(src.attribute_vocabulary)}
    pairs = [(i + 1, theirs[t]) for i, t in enumerate(dst.attribute_vocabulary) if t in theirs]
    if not pairs or src.attributes.weight.shape[1] != dst.attributes.weight.shape[1]:
        return 0
    rows, their_rows = (torch.tensor(col, dtype=torch.long) for col in zip(*pairs, strict=True))
    with torch.no_grad():
        dst.attributes.weight[rows] = src.attributes.weight[their_rows].to(dst.attributes.weight.dtype)
    return len(pairs)


def start_context(source: Transformer, label: str, cfg: TransformerConfig, cap: int = 0) -> TransformerConfig:
    """`cfg` inheriting the start model's network (its context for max_len "auto"); a ConfigError for another
    max_len where the start model's position table would not fit, or a start model reading over `cap` (> 0: the
    deployment's limits.max_len) events."""
    cfg = cfg.inheriting(source.network_config)
    if cfg.max_len != source.max_len and cfg.positions == "reverse":  # its position table would not fit
        raise ConfigError(f"parameter 'max_len' of model 'transformer' must be that of the start model "
                          f"{label or ''} ({source.max_len}) or \"auto\" to start from it, got {cfg.max_len}")
    if cap > 0 and source.max_len > cap:
        raise ConfigError(f"the start model {label or ''} reads {source.max_len} events of history, over "
                          f"this deployment's limit of {cap} (setting limits.max_len)")
    return cfg


def fine_tuning_start(source: Transformer, label: str, net: SeqNet) -> dict[str, Any]:
    """Copy the start model `source`'s weights into `net` (a fresh network for the new shop: `transfer_weights`,
    then the attribute rows both vocabularies hold); the record of what was copied (the model's
    `initialised_from`)."""
    assert source.net is not None
    if source.config.embedding_size != net.cfg.embedding_size:
        raise ConfigError(f"parameter 'embedding_size' of model 'transformer' must be that of the start model "
                          f"{label or ''} ({source.config.embedding_size}) to start from it, "
                          f"got {net.cfg.embedding_size}")
    copied = transfer_weights(source.net, net)
    rows = copy_attribute_rows(source.net, net)  # the tokens both vocabularies hold (brands, categories)
    fresh = [name for name, _ in net.named_parameters() if name not in copied]
    log.info("transformer: started from %s (%d weights copied, fresh: %s)", label, len(copied), fresh)
    return {"model": label, "copied": copied, "fresh": fresh, **({"attribute_rows": rows} if rows else {})}


def keep_the_better(model: Transformer, train: Interactions, catalog: ItemCatalog | None,
                    validation: RankingValidation) -> None:
    """Fine-tuning that ends below its start: `model`, fine-tuned from its `start_from` model on `train`, becomes
    that model carried over to `train`'s items (what `--zero-shot` makes of it) where the carried one ranks the
    `validation` targets better (NDCG@k; a tie keeps the fine-tuned model, and one whose scores are not numbers
    loses). A small shop's fine-tuning can land below the start it began from. Both figures and the one kept are
    in `model.initialised_from["validation"]`; a start that cannot be carried over (no item of the shop has text
    or an attribute it knows) is not compared, and the record says why. Every process compares alone, on the
    whole validation set."""
    assert model.fitted is not None
    key = f"NDCG@{validation.k}"
    tuned = model.fitted.validation_metrics(validation, Dist())[0]
    fine_tuned = dict(vars(model))  # carry_over rebinds the attributes it sets, so this restores them
    compared: dict[str, float] | str
    try:
        model.carry_over(train.items, catalog).weigh_carried(validation)
    except (DataError, ConfigError) as exc:  # nothing to compare: the fine-tuned model stays, with the reason
        compared, kept = str(exc), "fine-tuned"
    else:
        assert model.fitted is not None
        start = model.fitted.validation_metrics(validation, Dist())[0]
        compared = {key: start}
        kept = "start" if start > tuned or (math.isnan(tuned) and not math.isnan(start)) else "fine-tuned"
        log.info("transformer: validation %s fine-tuned %.4f, its start carried over %.4f: kept the %s", key,
                 tuned, start, kept)
    if kept == "fine-tuned":
        vars(model).update(fine_tuned)
    model.initialised_from = {**model.initialised_from,
                              "validation": {"fine-tuned": {key: tuned}, "start": compared, "kept": kept}}
