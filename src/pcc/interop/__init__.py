"""Converters between pcc circuits and other libraries' circuits (optional dependencies, imported lazily)."""
from .pyjuice import from_pyjuice

__all__ = ["from_pyjuice"]
