"""The app's admin: the one place its admin classes are registered.

Django's admin autodiscovery imports this package; importing the two modules below
registers the sessions admin (:mod:`.sessions`, with its list filters in :mod:`.filters`,
the session page's card in :mod:`.review` and the overview page in :mod:`.overview`) and
the webhook events admin (:mod:`.webhook_events`) on the default admin site. No other
module of the app registers anything as a side effect of being imported.
"""

from __future__ import annotations

from . import sessions, webhook_events

__all__ = ["sessions", "webhook_events"]
