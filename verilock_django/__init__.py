"""Mirror Verilock identity-verification sessions into Django."""

__version__ = "0.1.0.dev0"
