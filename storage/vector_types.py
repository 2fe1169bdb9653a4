"""The values the vector store deals in: references, records, metadata and hits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class VectorRef:
    """Where a vector lives: its id (the memory UUID) and its space (which picks the shard)."""

    id: str
    space_id: int


@dataclass(frozen=True)
class VectorRecord:
    """A vector with the metadata we keep beside it."""

    id: str
    space_id: int
    embedding: Vector
    created_at: int
    digest: str
    tags: tuple[str, ...] = ()  # the memory's #tags (derived from its text, like `digest`)

    @property
    def ref(self) -> VectorRef:
        return VectorRef(self.id, self.space_id)

    def metadata(self, written_at: int) -> dict[str, str | int | list[str] | None]:
        """Chroma metadata; `tags` is a list, or None (Chroma then removes an old value)."""
        return {
            "space_id": self.space_id,
            "memory_id": self.id,
            "created_at": self.created_at,
            "digest": self.digest,
            "written_at": written_at,
            "tags": list(self.tags) or None,
        }


@dataclass(frozen=True)
class VectorMeta:
    """What a scan reports about one stored vector."""

    id: str
    space_id: int
    created_at: int
    digest: str
    written_at: int  # when the vector was last written (the sweep's grace period counts from it)
    tags: tuple[str, ...] = ()

    @property
    def ref(self) -> VectorRef:
        return VectorRef(self.id, self.space_id)


@dataclass(frozen=True)
class VectorHit:
    id: str
    similarity: float
