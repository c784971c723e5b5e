"""The Python client of the shoprec API: `Client` (blocking) and `AsyncClient` (asyncio), over httpx.

    from shoprec.client import Client, NotFound
    with Client("http://127.0.0.1:8000", "sk_...") as api:
        api.put_items([{"item_id": "i1", "title": "Blue mug", "category": "kitchen/mugs", "price": 9.5}])
        api.post_events([{"user_id": "u1", "item_id": "i1", "type": "view"}])
        for item in api.recommend("u1", k=5).items:
            print(item.item_id, item.score, item.reason["level"])

Results are the pydantic models of shoprec.client.models, generated from the API's OpenAPI schema
(clients/openapi.json). This package imports neither the server nor its dependencies (FastAPI, SQLAlchemy,
torch): only httpx and pydantic. docs/clients.md documents it.
"""

from shoprec.client._core import (
    ApiError,
    Call,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    Retries,
    ServerError,
    ShoprecError,
    Unauthorized,
)
from shoprec.client.aio import AsyncClient
from shoprec.client.sync import Client

__all__ = ["ApiError", "AsyncClient", "Call", "Client", "Conflict", "ConnectionFailed", "Forbidden",
           "InvalidRequest", "NotFound", "RateLimited", "Retries", "ServerError", "ShoprecError", "Unauthorized"]
