"""artist-id: which artist painted this picture? (library behind the DVC stages)."""

__version__ = "0.1.0"
