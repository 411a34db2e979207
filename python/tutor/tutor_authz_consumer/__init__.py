"""Tutor plugin for authz-flag-consumer (see README.md)."""

__version__ = "0.1.0"
