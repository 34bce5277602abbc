"""signals.py -- login writes the gateway session, logout deletes it.

Django's login() gives the session a new key before it sends user_logged_in: cycle_key() makes
it at once; flush() (another user was logged in) leaves it to SessionMiddleware's save at the
end of the request, so here an early save() makes it. The key written is then the one the
response's cookie carries. The key the browser came with is still in request.COOKIES: it is
deleted, so a session that was logged in as someone else does not outlive the switch in Redis.
logout() sends user_logged_out before it flushes, while the key is still the browser's."""

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out

from . import store


def on_login(sender, request, user, **kwargs):
    if request is None or not hasattr(request, "session"):
        return  # a login without a Django session (token auth): nothing for the gateway
    old = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if old and old != request.session.session_key:
        store.forget(old)
    if request.session.session_key is None:
        request.session.save()  # server-side engines create the key when there is none
    store.remember(request, user)


def on_logout(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        store.forget(request.session.session_key)


def connect():
    user_logged_in.connect(on_login, dispatch_uid="chartgate_session.login")
    user_logged_out.connect(on_logout, dispatch_uid="chartgate_session.logout")
