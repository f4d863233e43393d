"""on_delete rules and transfers (API.md §4.3, §4.6)."""

from __future__ import annotations

from typing import Any

from .writer import delete_entity

__all__ = ["delete_with_rules", "transfer"]


def delete_with_rules(entity: Any) -> None:
    """Delete ``entity`` after applying the on_delete rules of references to it."""
    delete_entity(entity)


def transfer(*args: Any) -> None:
    raise NotImplementedError
