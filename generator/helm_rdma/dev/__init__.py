"""Tooling of this repository, not of the runtime: the generated files `make chart` and `make docs` keep in git."""
