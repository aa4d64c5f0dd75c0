"""The command line `langneurons`: a thin Typer layer over the API, one module per stage.

The stage modules register their commands on `app` when imported; they are imported here in
pipeline order (find → steer → study → report → export), which is the order `langneurons --help` lists.
"""

from . import find, steer, study, report, export  # noqa: F401  # isort: skip  (pipeline order: registers the commands)
from .app import app

__all__ = ["app"]
