"""middleware.py -- follows session keys that change after login.

Login and logout need no middleware (signals.py). Django also gives a session a new key while
the user stays logged in: update_session_auth_hash() after a password change (the admin's and
PasswordChangeView do it) or a site's own request.session.cycle_key(). Without this middleware
the old key keeps working at the gateway until it expires and the new one is refused (401).

With it (anywhere after SessionMiddleware in MIDDLEWARE), a request that ends with another
session key than it started with deletes the old Redis key and, when the user is still logged
in, writes the new one. That also drops the key of a session Django found expired or invalid.
At login and logout it repeats what the signals did, which is harmless."""

from . import store


class SessionKeyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        before = request.session.session_key  # the cookie's key; no session load
        response = self.get_response(request)
        after = request.session.session_key
        if before is not None and after != before:
            store.forget(before)
            user = getattr(request, "user", None)
            if after is not None and user is not None and user.is_authenticated:
                store.remember(request, user)
        return response
