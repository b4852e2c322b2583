"""graffer_secevents: typed security events for Python web services.

One call writes one schema-validated JSON record with Datadog's standard attributes, counts it in the
failed-login metrics, and reports it to the APM trace::

    import graffer_secevents as secevents

    secevents.configure(service="auth-api")
    secevents.log_login(user, "failure", ip, login=typed_username, exists=False, reason="unknown_user")
"""

from ._api import (
    OutcomeLike,
    UserLike,
    emit,
    log_access_denied,
    log_account_locked,
    log_account_status,
    log_admin_action,
    log_data_export,
    log_group_membership,
    log_impersonation,
    log_input_validation_failed,
    log_login,
    log_logout,
    log_mfa_challenge,
    log_mfa_change,
    log_password_change,
    log_password_reset,
    log_privilege_change,
    log_rate_limited,
    log_sensitive_access,
    log_signup,
    log_token_created,
    log_token_revoked,
    log_user_created,
    log_user_deleted,
    log_user_updated,
)
from ._attempts import record_bad_credential, record_login, suppress_request_events
from ._catalog import CATALOG, EventType, OutcomeRule, Param
from ._config import Config, configure, get_config
from ._context import RequestContext, actor, current_request, current_user, set_user
from ._delivery import flush
from ._errors import (
    ConfigurationError,
    EventValidationError,
    ForwardedHeaderIgnoredWarning,
    MissingDependencyError,
    SecEventsError,
    SecEventsWarning,
)
from ._impersonation import impersonating
from ._origin import job, job_origin
from ._pipeline import SCHEMA_VERSION
from ._types import Outcome, User

__version__ = "0.1.0.dev0"

__all__ = [
    "CATALOG",
    "SCHEMA_VERSION",
    "Config",
    "ConfigurationError",
    "EventType",
    "EventValidationError",
    "ForwardedHeaderIgnoredWarning",
    "MissingDependencyError",
    "Outcome",
    "OutcomeLike",
    "OutcomeRule",
    "Param",
    "RequestContext",
    "SecEventsError",
    "SecEventsWarning",
    "User",
    "UserLike",
    "__version__",
    "actor",
    "configure",
    "current_request",
    "current_user",
    "emit",
    "flush",
    "get_config",
    "impersonating",
    "job",
    "job_origin",
    "log_access_denied",
    "log_account_locked",
    "log_account_status",
    "log_admin_action",
    "log_data_export",
    "log_group_membership",
    "log_impersonation",
    "log_input_validation_failed",
    "log_login",
    "log_logout",
    "log_mfa_challenge",
    "log_mfa_change",
    "log_password_change",
    "log_password_reset",
    "log_privilege_change",
    "log_rate_limited",
    "log_sensitive_access",
    "log_signup",
    "log_token_created",
    "log_token_revoked",
    "log_user_created",
    "log_user_deleted",
    "log_user_updated",
    "record_bad_credential",
    "record_login",
    "set_user",
    "suppress_request_events",
]


def _show_the_public_module() -> None:
    """Public classes and functions name the module users import them from, as httpx's do.

    Reprs, tracebacks, pickles and the API reference then show `graffer_secevents.Config`, never the private
    module it is defined in; tests/test_public_api.py pins this for every name in `__all__`.
    """
    namespace = globals()
    for name in __all__:
        obj = namespace[name]
        if isinstance(obj, type) or (callable(obj) and hasattr(obj, "__code__")):
            obj.__module__ = __name__


_show_the_public_module()
del _show_the_public_module
