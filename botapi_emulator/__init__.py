"""A local Telegram Bot API emulator (aiohttp) that the real python-telegram-bot talks to."""

from botapi_emulator.emulator import BotApiEmulator
from botapi_emulator.errors import ApiError
from botapi_emulator.markup import button_data
from botapi_emulator.model import CHANNEL_BOT, GROUP_ANONYMOUS_BOT, SentMessage, Upload

__all__ = [
    "CHANNEL_BOT",
    "GROUP_ANONYMOUS_BOT",
    "ApiError",
    "BotApiEmulator",
    "SentMessage",
    "Upload",
    "button_data",
]
