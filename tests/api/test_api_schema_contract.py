"""The API's pydantic schemas (the HTTP contract, in the OpenAPI document) and the services' result dataclasses
(the in-process contract) describe the same answers twice on purpose: the schemas may add API-only fields, but
each answer's fields must agree in name and kind, so that the two cannot drift apart unnoticed."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from pydantic import BaseModel

from shoprec.api import schemas
from shoprec.service.answers import Explanation, Recommendation, RecommendedItem
from shoprec.service.data import ItemView, UserEvent, UserView, WriteResult
from shoprec.service.experiments import Experiment, Variant
from shoprec.service.jobs import Job
from shoprec.service.models import ModelInfo
from shoprec.service.retraining import Decision

PAIRS: list[tuple[type, type[BaseModel]]] = [
    (WriteResult, schemas.WriteOut), (ItemView, schemas.ItemOut), (UserEvent, schemas.EventOut),
    (UserView, schemas.UserOut), (RecommendedItem, schemas.RecommendedItem),
    (Recommendation, schemas.RecommendationOut), (ModelInfo, schemas.ModelOut), (Job, schemas.JobOut),
    (Explanation, schemas.ExplanationOut), (Variant, schemas.VariantOut), (Experiment, schemas.ExperimentOut),
    (Decision, schemas.DecisionOut),
]  # ExperimentResults flattens its Experiment in to_json; its bytes are checked in tests/api/test_api_experiments


def _public_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]


@pytest.mark.parametrize(("answer", "schema"), PAIRS, ids=[s.__name__ for _, s in PAIRS])
def test_a_service_answer_and_its_schema_have_the_same_fields(answer: type, schema: type[BaseModel]) -> None:
    serialised = _public_fields(answer)
    assert sorted(schema.model_fields) == sorted(serialised), f"{answer.__name__} vs {schema.__name__}"


def test_the_kinds_of_shared_scalar_fields_agree() -> None:
    for answer, schema in PAIRS:
        hints = typing.get_type_hints(answer)
        for name, field in schema.model_fields.items():
            if name in hints and hints[name] in (str, int, float, bool):
                assert field.annotation is hints[name], f"{answer.__name__}.{name}"
