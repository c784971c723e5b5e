"""Search spaces: parsing, validation messages naming the parameter, grid enumeration, defaults."""

from __future__ import annotations

import pytest

from shoprec.errors import ConfigError
from shoprec.models.base import MODEL_NAMES
from shoprec.tuning import default_space, load_space, parse_space
from shoprec.tuning.space import Choice, Range, read_space


def test_choices_ranges_and_features_are_parsed_with_the_parameter_types():
    space = parse_space("als", {"embedding_size": [32, 64], "regularization": {"low": 0.001, "high": 1.0, "log": True},
                                "epochs": {"low": 5, "high": 15, "step": 5},
                                "features": {"text": [True, False]}})
    by_name = {p.name: p for p in space.params}
    assert by_name["embedding_size"] == Choice("embedding_size", (32, 64))
    reg, it = by_name["regularization"], by_name["epochs"]
    assert isinstance(reg, Range) and not reg.integer and reg.log
    assert isinstance(it, Range) and it.integer
    assert it.grid() == (5, 10, 15)
    assert by_name["features.text"] == Choice("features.text", (True, False))


def test_grid_enumerates_stepped_float_ranges_and_counts_points():
    space = parse_space("ease", {"regularization": {"low": 10.0, "high": 30.0, "step": 10.0},
                                 "history_decay": [1.0, 0.5]})
    assert space.grid() == {"regularization": [10.0, 20.0, 30.0], "history_decay": [1.0, 0.5]}
    assert space.grid_size() == 6


@pytest.mark.parametrize(("raw", "name", "words"), [
    ({"factorz": [1, 2]}, "factorz", "unknown parameter"),
    ({"embedding_size": []}, "embedding_size", "empty"),
    ({"regularization": {"low": 1.0, "high": 0.1}}, "regularization", "empty range"),
    ({"embedding_size": ["many"]}, "embedding_size", "integer"),
    ({"embedding_size": [8.5]}, "embedding_size", "integer"),
    ({"alpha": [-1.0]}, "alpha", "alpha"),
    ({"embedding_size": {"low": 1.5, "high": 8}}, "embedding_size", "whole numbers"),
    ({"regularization": {"low": 0.0, "high": 1.0, "log": True}}, "regularization", "log"),
    ({"regularization": {"low": "a", "high": 1.0}}, "regularization", "finite number"),
    ({"regularization": {"low": 0.1}}, "regularization", "'low' and 'high'"),
    ({"features.colour": [1]}, "features.colour", "unknown parameter"),
    ({"features.text": ["yes"]}, "features.text", "true or false"),
    ({"features.weight.purchase": [-2]}, "features.weight.purchase", ">= 0"),
    ({"embedding_size": [[1, 2]]}, "embedding_size", "choices must be"),
])
def test_bad_spaces_are_rejected_naming_the_parameter(raw, name, words):
    with pytest.raises(ConfigError) as err:
        parse_space("als", raw)
    assert repr(name) in str(err.value) and words in str(err.value)


def test_a_range_over_a_non_numeric_parameter_is_rejected():
    with pytest.raises(ConfigError, match="'weighting' is not numeric"):
        parse_space("itemknn", {"weighting": {"low": 0, "high": 1}})
    with pytest.raises(ConfigError, match=r"'weighting' .* must be one of"):
        parse_space("itemknn", {"weighting": ["none", "bm42"]})


def test_grid_search_needs_enumerable_parameters():
    space = parse_space("als", {"regularization": {"low": 0.01, "high": 1.0}})
    with pytest.raises(ConfigError, match="'regularization': grid search needs choices"):
        space.grid()


def test_empty_space_and_unknown_model_are_rejected():
    with pytest.raises(ConfigError, match="empty"):
        parse_space("als", {})
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        parse_space("nope", {"a": [1]})


def test_fixed_parameters_are_checked_together_with_each_value():
    with pytest.raises(ConfigError, match="'burn_in'"):
        parse_space("mf", {"burn_in": ["x"]}, fixed={"epochs": 10})
    assert parse_space("mf", {"embedding_size": [2, 3]}, fixed={"epochs": 10}).names == ["embedding_size"]


def test_spaces_are_read_from_inline_json_json_and_toml_files(tmp_path):
    assert read_space('{"embedding_size": [8, 16]}') == {"embedding_size": [8, 16]}
    (tmp_path / "s.json").write_text('{"embedding_size": [8]}')
    assert read_space(str(tmp_path / "s.json")) == {"embedding_size": [8]}
    (tmp_path / "s.toml").write_text('embedding_size = [8, 16]\n[features]\ntext = [true, false]\n')
    space = load_space("als", str(tmp_path / "s.toml"))
    assert space.names == ["embedding_size", "features.text"]
    with pytest.raises(ConfigError, match="neither a file nor valid JSON"):
        read_space("{factors: 1")
    with pytest.raises(ConfigError, match="must be an object"):
        read_space("[1, 2]")


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_model_has_a_valid_default_space_that_grid_search_can_enumerate(model):
    space = load_space(model, None)
    assert space.model == model and space.grid_size() >= 2
    assert default_space(model) is not default_space(model)  # callers get copies
