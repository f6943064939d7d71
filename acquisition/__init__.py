"""acquisition: tracked entry points into messenger chats, and proof of which source brought
each subscriber."""

from pathlib import Path

__version__ = "0.1.0"


def bundled(name: str, marker: str) -> Path:
    """A folder kept at the top level of the repository (`alembic`, `widgets`): inside the
    package once installed (as `_name`), beside it in a source checkout (editable install).
    `marker` is a file the folder must hold."""
    here = Path(__file__).resolve().parent
    for path in (here / f"_{name}", here.parent / name):
        if (path / marker).is_file():
            return path
    raise FileNotFoundError(f"{name}/{marker} is neither in the package nor beside it")
