"""Qt widgets and models. Talks to ``desktop.services`` only, never to SQLAlchemy or ``desktop.db``."""
