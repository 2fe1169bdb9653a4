"""A running process follows a reindex that moved the index to another backend (fp32 ↔ int8).

With EMBEDDING_BACKEND=auto the bot embeds with the backend the index was built with. When
`memorybot reindex` rebuilds it with another one next to the running bot, the bot must embed
with that one before it writes into the new generation: its vectors would otherwise be another
model's. A process that named its backend, or runs another model, cannot follow: it logs
why and must be restarted (a start then refuses the mismatch, as for any model change).
"""

from __future__ import annotations

import dataclasses
import logging

from engine.index_model import ModelIdentity
from engine.stores import Stores, model_encoder

log = logging.getLogger("memorybot.index")


async def follow_model(stores: Stores, recorded: ModelIdentity | None) -> bool:
    """Embed with the backend `recorded` names if it makes other vectors than this process's
    and it can be followed; True if the encoder was changed."""
    current = stores.model
    if recorded is None or current is None or recorded.makes_same_vectors(current):
        return False
    same_model = (recorded.name, recorded.dimension) == (current.name, current.dimension)
    if not (stores.auto_backend and same_model):
        log.error(
            "index rebuilt with %s; this process embeds with %s: restart it",
            recorded.describe(),
            current.describe(),
        )
        return False
    backend = "onnx-int8" if recorded.precision == "int8" else "onnx"
    settings = stores.settings.model_copy(update={"embedding_backend": backend})
    await stores.embedder.use(model_encoder(settings))
    stores.settings = settings
    stores.model = dataclasses.replace(current, backend=backend)
    log.info("index rebuilt with %s: now embedding with it", stores.model.describe())
    return True
