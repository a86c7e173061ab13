"""How notifications leave the service: webhooks and email."""
