"""memorybot: scheduled jobs (expiry, sweep, broadcast delivery)."""
