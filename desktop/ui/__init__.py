"""Qt widgets and models. Talks to ``desktop.services`` only, never to SQLAlchemy or ``desktop.db``.

Grouped like the services, by staff task: ``requests``, ``patrons``, ``notices``, ``admin``; shared widgets and
models in ``widgets``. Windows never import each other: they open one another by id through ``navigation``,
and ``windows`` (the composition root, loaded by ``main_window``) registers them all. ``window_state`` keeps
every window's geometry; ``context`` and ``threads`` are what every window needs to run work off the GUI thread.
"""
