"""The notice side of the desk: the System Manager's poller in the app, the template editor, and the banner that
says why notices wait.

Offers (``__all__``): ``poller`` (the System Manager on its QThread and its status-bar indicator),
``template_editor``, ``delivery_banner``.
"""

__all__ = ["delivery_banner", "poller", "template_editor"]
