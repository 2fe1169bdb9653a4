"""memorybot: the memory engine (domain logic and the write protocol)."""
