"""Errors shoprec raises for bad input: each carries a message a person can act on."""

from __future__ import annotations


class ShoprecError(Exception):
    """Base class of every error shoprec reports to a user without a traceback."""


class DataError(ShoprecError, ValueError):
    """Input data is invalid: the message names the record and the field."""


class ConfigError(ShoprecError, ValueError):
    """A model config, search space or setting is invalid: the message names the parameter."""


class CannotScoreError(ShoprecError, ValueError):
    """A model was asked to score a query it cannot answer (e.g. an unknown user)."""


class StorageError(ShoprecError):
    """The database cannot be reached or refused an operation."""
