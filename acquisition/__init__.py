"""acquisition: tracked entry points into messenger chats, and proof of which source brought
each subscriber."""

__version__ = "0.1.0"
