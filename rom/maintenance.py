"""Index maintenance utilities (API.md §7.5)."""

from __future__ import annotations

__all__ = ["clean_old_index", "clean_unsafe_cols", "refresh_all_indexes", "refresh_indices", "show_progress"]


def refresh_indices(*a):
    raise NotImplementedError


refresh_all_indexes = clean_old_index = clean_unsafe_cols = show_progress = refresh_indices
