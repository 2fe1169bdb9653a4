"""memorybot: storage adapters (SQL, Chroma, embeddings)."""
