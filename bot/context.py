"""The typed PTB context every handler gets: PTB's own, plus the bot's services."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot

from bot.services import KEY, BotServices

# PTB's ExtBot, typed by its rate limiter's per-request argument (ChatRateLimiter: an int).
Bot = ExtBot[int]


def services_of(bot_data: dict[Any, Any]) -> BotServices:
    """The services `build_application` put into the Application's `bot_data`."""
    services = bot_data[KEY]
    assert isinstance(services, BotServices)
    return services


class BotContext(CallbackContext[Bot, dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """`context` in every handler; `context.services` is the engine and the bot's stores."""

    @property
    def services(self) -> BotServices:
        """The bot's services (one instance per Application)."""
        return services_of(self.bot_data)


CONTEXT_TYPES = ContextTypes(context=BotContext)
# No PTB job queue: scheduled work runs in APScheduler under the leader lock (jobs/).
BotApplication = Application[Bot, BotContext, dict[Any, Any], dict[Any, Any], dict[Any, Any], None]
