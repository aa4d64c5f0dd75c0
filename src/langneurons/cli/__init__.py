"""The command line `langneurons`: a thin Typer layer over the API, one module per stage."""

from . import methods  # noqa: F401  (registers `compare` and `stability` on app)
from .app import app

__all__ = ["app"]
