"""Telegram update handlers, one module per theme."""
