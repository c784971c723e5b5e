"""The `shoprec` command line: thin commands over the services."""
