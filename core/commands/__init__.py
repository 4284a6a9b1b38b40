"""Glia's own CLI commands that live outside core/cli.py."""
