"""Readers for the import formats: each turns a file or directory into a stream of ingest records."""
