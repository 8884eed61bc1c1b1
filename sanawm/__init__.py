"""sanawm: an open, fast and tested SANA-WM video world model."""

__version__ = "0.1.0"
