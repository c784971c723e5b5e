"""The transformer's item text: whitening of the catalog's text vectors (an option, off by default)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_transformer import cluster_data

from shoprec.models.transformer import TransformerConfig, build_content
from shoprec.models.transformer.content import whiten


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
    from shoprec.models.training import TrainOptions

    content = build_content(catalog, catalog.items, cfg, TrainOptions(text_cache_dir=str(tmp_path), progress=False))
    raw = build_content(catalog, catalog.items, TransformerConfig(text_encoder="hashing", use_attributes=False),
                        TrainOptions(text_cache_dir=str(tmp_path), progress=False))
    assert content.text.shape == raw.text.shape and not content.text[0].any()
    assert np.allclose(content.text[1:], whiten(raw.text[1:]), atol=1e-5)
