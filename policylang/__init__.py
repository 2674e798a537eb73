"""policylang: a policy language for when an AI assistant may end a conversation."""

__version__ = "0.1.0"
