"""Named item vectors over HTTP: PUT /v1/items stores them, GET shows them (the item's export), DELETE removes
them, and a wrong dimension or a NaN is a 422 naming the record's index and the field `vectors.<name>`."""

from __future__ import annotations

from fastapi.testclient import TestClient


def _refused(resp) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status_code == 422, resp.text
    (err,) = resp.json()["errors"]
    return err


def test_put_get_delete_item_vectors(client: TestClient) -> None:
    body = [{"item_id": "v1", "title": "Red shoe", "vectors": {"image": [0.5, -1.0, 2.0], "llm": [1.0, 0.0]}},
            {"item_id": "v2", "vectors": {"image": [0.0, 0.0, 1.0]}}]
    resp = client.put("/v1/items", json=body)
    assert resp.status_code == 200 and resp.json()["accepted"] == 2, resp.text
    got = client.get("/v1/items/v1").json()
    assert got["vectors"] == {"image": [0.5, -1.0, 2.0], "llm": [1.0, 0.0]} and got["attributes"] == {}
    assert client.get("/v1/items/v2").json()["vectors"] == {"image": [0.0, 0.0, 1.0]}
    assert client.delete("/v1/items/v1").status_code == 204
    assert client.put("/v1/items", json=[{"item_id": "v1"}]).status_code == 200  # revived: its vectors are gone
    assert client.get("/v1/items/v1").json()["vectors"] == {}


def test_wrong_dimension_is_refused_by_field(client: TestClient) -> None:
    assert client.put("/v1/items", json=[{"item_id": "d1", "vectors": {"image": [1.0, 2.0]}}]).status_code == 200
    resp = client.put("/v1/items", json=[{"item_id": "d2", "vectors": {"image": [1.0, 2.0]}},
                                         {"item_id": "d3", "vectors": {"image": [1.0, 2.0, 3.0]}}])
    err = _refused(resp)
    assert (err["index"], err["field"], err["reason"]) == (1, "vectors.image", "bad_vector_dim")
    assert client.get("/v1/items/d2").status_code == 404  # nothing of the refused batch was written


def test_nan_and_bad_names_are_refused_by_field(client: TestClient) -> None:
    nan = client.put("/v1/items", content=b'[{"item_id": "n1", "vectors": {"image": [1.0, NaN]}}]',
                     headers={"Content-Type": "application/json"})
    err = _refused(nan)
    assert err["index"] == 0 and err["field"].startswith("vectors.image")
    err = _refused(client.put("/v1/items", json=[{"item_id": "n2", "vectors": {"Bad Name": [1.0]}}]))
    assert err["field"].startswith("vectors")
    err = _refused(client.put("/v1/items", json=[{"item_id": "n3", "vectors": {"image": []}}]))
    assert err["field"].startswith("vectors.image")
