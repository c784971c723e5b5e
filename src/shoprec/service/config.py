"""Serving settings: the [serving] section of the one settings tree (shoprec.settings), named here for the
service layer's callers."""

from __future__ import annotations

from shoprec.settings import RATE_PERIODS, ServingConfig, UnknownItems, parse_rate_limit

__all__ = ["RATE_PERIODS", "ServingConfig", "UnknownItems", "parse_rate_limit"]
