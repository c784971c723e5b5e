"""The REST API: create_app(settings) factory, routes, schemas and authentication."""

from shoprec.api.app import create_app

__all__ = ["create_app"]
