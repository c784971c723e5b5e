"""One name per concept: `embedding_size` and `epochs` everywhere; the old `factors` / `iterations` of als, bpr
and mf still work with a FutureWarning, and stored artifacts that carry the old names load without one."""

from __future__ import annotations

import json
import warnings

import pytest

from shoprec.errors import ConfigError
from shoprec.models.base import create_model, load_model
from shoprec.tuning.space import parse_space

RENAMED = [("als", "factors", "embedding_size"), ("als", "iterations", "epochs"), ("bpr", "factors", "embedding_size"),
           ("bpr", "iterations", "epochs"), ("mf", "factors", "embedding_size")]


@pytest.mark.parametrize(("model", "old", "new"), RENAMED)
def test_an_old_name_sets_the_new_parameter_and_warns(model: str, old: str, new: str) -> None:
    with pytest.warns(FutureWarning, match=f"'{old}' is deprecated, use '{new}'"):
        config = create_model(model, {old: 7}).config
    assert getattr(config, new) == 7
    assert not hasattr(config, old)


def test_the_old_and_the_new_name_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="'factors' is the old name of 'embedding_size'"):
        create_model("als", {"factors": 8, "embedding_size": 16})


def test_a_search_space_with_an_old_name_tunes_the_new_parameter() -> None:
    with pytest.warns(FutureWarning):
        space = parse_space("als", {"factors": [8, 16]}, fixed={"iterations": 2})
    assert space.names == ["embedding_size"]


def test_an_artifact_saved_with_old_names_loads_silently(planted, tmp_path) -> None:
    path = create_model("als", {"embedding_size": 4, "epochs": 2}).fit(planted.train).save(tmp_path / "m")
    stored = json.loads((path / "config.json").read_text())
    assert stored["config"]["embedding_size"] == 4 and stored["config"]["epochs"] == 2
    stored["config"]["factors"] = stored["config"].pop("embedding_size")
    stored["config"]["iterations"] = stored["config"].pop("epochs")
    (path / "config.json").write_text(json.dumps(stored))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_model(path)
    assert (model.config.embedding_size, model.config.epochs) == (4, 2)
