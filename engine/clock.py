"""The one clock every timestamp comes from (timezone-aware UTC)."""

from __future__ import annotations

from storage.models import utcnow

__all__ = ["utcnow"]
