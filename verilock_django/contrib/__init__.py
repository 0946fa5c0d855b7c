"""Integrations with optional third-party packages (each module needs its own extra)."""
