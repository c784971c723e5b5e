"""The transformer's item text: the names' own text vectors (`title_view`, on where a catalog has descriptions)
and whitening of the text vectors (`text_whiten`, an option, off by default)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from test_transformer import FAST, cluster_data, last_item_queries

from shoprec.data import ItemCatalog
from shoprec.models import load_model
from shoprec.models.training import TrainOptions
from shoprec.models.transformer import Transformer, TransformerConfig, build_content
from shoprec.models.transformer.content import whiten
from shoprec.preprocess.text import HashingEncoder


def test_whitening_gives_every_direction_the_same_variance_and_keeps_empty_rows_empty() -> None:
    rng = np.random.default_rng(0)
    common = rng.normal(size=16)
    vectors = (common * 5 + rng.normal(size=(400, 16)) * np.linspace(0.05, 2.0, 16)).astype(np.float32)
    vectors[[3, 7]] = 0.0  # items without text
    white = whiten(vectors, shrink=0.0)
    assert not white[[3, 7]].any()
    rows = np.ones(len(vectors), dtype=bool)
    rows[[3, 7]] = False
    cov = np.cov(white[rows].T)
    assert np.allclose(cov / cov[0, 0], np.eye(16), atol=1e-3)  # isotropic: equal variances, no correlation
    assert abs(np.linalg.norm(white[rows], axis=1).mean() - 1.0) < 1e-5  # the scale of unit sentence vectors
    shrunk = np.cov(whiten(vectors, shrink=0.1)[rows].T)  # noise directions are not blown up all the way
    assert shrunk[0, 0] < shrunk[15, 15]


def test_whitened_text_vectors_are_used_and_saved_as_content(tmp_path: Path) -> None:
    _, catalog, _ = cluster_data()
    cfg = TransformerConfig(text_encoder="hashing", text_whiten=True, use_attributes=False)
    content = build_content(catalog, catalog.items, cfg, TrainOptions(text_cache_dir=str(tmp_path), progress=False))
    raw = build_content(catalog, catalog.items, TransformerConfig(text_encoder="hashing", use_attributes=False),
                        TrainOptions(text_cache_dir=str(tmp_path), progress=False))
    assert content.text.shape == raw.text.shape and not content.text[0].any()
    assert np.allclose(content.text[1:], whiten(raw.text[1:]), atol=1e-5)


# ------------------------------------------------------------------------------ the names' text (title_view)
def _with_descriptions(catalog: ItemCatalog, words: int = 60, seed: int = 0) -> ItemCatalog:
    """`catalog` with a long description of random words per item (no word of any title): noise that drowns
    the title in the item's one text vector."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"filler{k}" for k in range(400)]
    descriptions = [" ".join(rng.choice(vocabulary, words)) for _ in range(len(catalog))]
    return dataclasses.replace(catalog, description=descriptions)


def _options(tmp_path: Path) -> TrainOptions:
    return TrainOptions(text_cache_dir=str(tmp_path), progress=False)


def test_title_view_is_the_names_text_and_comes_with_descriptions_only(tmp_path: Path) -> None:
    _, plain, _ = cluster_data()
    described = _with_descriptions(plain)
    cfg = TransformerConfig(text_encoder="hashing", use_attributes=False)
    content = build_content(described, described.items, cfg, _options(tmp_path))
    names = HashingEncoder().encode([described.name_text(i) for i in range(len(described))])
    assert content.title.shape == content.text.shape and not content.title[0].any()
    np.testing.assert_allclose(content.title[1:], names, atol=1e-6)
    assert not np.allclose(content.text[1:], names, atol=1e-3)  # the whole text is another vector
    # no descriptions (Beauty, Online Retail): the name is the whole text, and there is no second view
    assert build_content(plain, plain.items, cfg, _options(tmp_path)).title.shape[1] == 0
    off = dataclasses.replace(cfg, title_view=False)
    assert build_content(described, described.items, off, _options(tmp_path)).title.shape[1] == 0
    # a carried model follows its source, descriptions or not
    forced = build_content(plain, plain.items, off, _options(tmp_path), title_view=True)
    np.testing.assert_allclose(forced.title, forced.text, atol=1e-6)


def test_title_view_ranks_cold_items_whose_descriptions_drown_their_titles(tmp_path: Path) -> None:
    data, catalog, hidden = cluster_data()
    catalog = _with_descriptions(catalog)
    params = {**FAST, "epochs": 20, "id_dropout": 0.3, "use_attributes": False, "text_encoder": "hashing",
              "text_cache_dir": str(tmp_path)}
    cluster_of, user_cluster = np.arange(data.n_items) // 15, np.arange(data.n_users) % 4
    same = cluster_of[hidden][None, :] == user_cluster[:, None]
    share = {}
    for view in (True, False):
        model = Transformer.from_dict({**params, "title_view": view}).fit(data, catalog)
        assert (model.fitted.members[0].net.title_text is not None) is view
        cold = model.score(last_item_queries(data))[:, hidden]
        # how often the user's cluster's cold items all come before every other cluster's cold item
        share[view] = (np.where(same, cold, np.inf).min(axis=1) > np.where(same, -np.inf, cold).max(axis=1)).mean()
    assert share[True] > 0.9 and share[True] > share[False] + 0.2


def test_a_model_with_the_title_view_is_saved_and_loaded_with_it(tmp_path: Path) -> None:
    data, catalog, _ = cluster_data(n_users=80)
    model = Transformer.from_dict({**FAST, "epochs": 2, "text_encoder": "hashing",
                                   "text_cache_dir": str(tmp_path)}).fit(data, _with_descriptions(catalog))
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.fitted.members[0].net.title_text is not None
    queries = last_item_queries(data)
    np.testing.assert_array_equal(loaded.score(queries), model.score(queries))


@pytest.mark.parametrize("source_has_descriptions", [True, False])
def test_a_carried_model_reads_the_names_exactly_when_its_source_does(source_has_descriptions: bool,
                                                                      tmp_path: Path) -> None:
    data, catalog, _ = cluster_data(n_users=80)
    source_catalog = _with_descriptions(catalog) if source_has_descriptions else catalog
    target_catalog = catalog if source_has_descriptions else _with_descriptions(catalog)
    params = {**FAST, "epochs": 2, "text_encoder": "hashing", "text_cache_dir": str(tmp_path)}
    source = Transformer.from_dict(params).fit(data, source_catalog)
    carried = Transformer.from_dict(params).start_from(source, "source")
    carried.carry_over(target_catalog.items, target_catalog)  # zero-shot: nothing trained on the target
    net = carried.fitted.members[0].net
    assert (net.title_text is not None) is source_has_descriptions
    if source_has_descriptions:  # the source's projection of the names, applied to the target's names
        theirs = source.fitted.members[0].net.title_text
        assert torch.equal(net.title_text.weight, theirs.weight)
        assert "title_text.weight" not in carried.initialised_from["fresh"]
    assert np.isfinite(carried.score(last_item_queries(data))).all()
