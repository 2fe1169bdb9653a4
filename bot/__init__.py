"""memorybot: the Telegram front end (handlers, intake, CLI)."""
