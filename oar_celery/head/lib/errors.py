"""Refusals the head answers with one line."""

from __future__ import annotations


class Refused(Exception):
    """A request about one job that cannot be carried out; its message is the answer."""
