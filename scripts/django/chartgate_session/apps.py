"""apps.py -- connects the login/logout receivers and checks the settings at start-up."""

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from . import instruments


class ChartgateSessionConfig(AppConfig):
    name = "chartgate_session"
    verbose_name = "chartgate sessions"

    def ready(self):
        from . import signals

        signals.connect()
        checks.register(check_settings)


def check_settings(app_configs, **kwargs):
    """Settings the app cannot work with are errors at `manage.py check`/`runserver`/`migrate`
    time, not surprises at the first login."""
    found = []
    if not getattr(settings, "CHARTGATE_REDIS_URL", None):
        found.append(checks.Error(
            "CHARTGATE_REDIS_URL is not set",
            hint="the URL of the Redis the gateway reads (its --redis), e.g. "
                 "redis://127.0.0.1:6379/0",
            id="chartgate_session.E001"))
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.signed_cookies":
        found.append(checks.Error(
            "the signed_cookies session engine keeps no session key the gateway could look up",
            hint="use the db, cache, cached_db or file session engine",
            id="chartgate_session.E002"))
    try:
        import_string(instruments.hook_path())
    except ImportError as e:
        found.append(checks.Error("CHARTGATE_INSTRUMENTS: %s" % e,
                                  id="chartgate_session.E003"))
    if settings.SESSION_COOKIE_NAME != "sessionid":
        found.append(checks.Warning(
            "SESSION_COOKIE_NAME is %r, but the gateway reads only the cookie `sessionid`"
            % settings.SESSION_COOKIE_NAME,
            id="chartgate_session.W001"))
    return found
