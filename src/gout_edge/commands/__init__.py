"""Thin CLI commands: parse options → call a library function returning a dataclass → render.

Shared helpers for rendering live in ``_output``.
"""
