"""Ingestion: validation and the one pipeline that REST and bulk import share."""
