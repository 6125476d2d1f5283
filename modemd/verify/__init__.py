"""Verifying mobile-originated codes: an application asks, a phone answers by SMS, modemd tells."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modemd.verify.service import RequestError, Screening, Verifier, VerifySettings

__all__ = ["RequestError", "Screening", "Verifier", "VerifySettings"]


def __getattr__(name: str) -> object:
    # The service loads when first asked for: every new store's migration imports
    # modemd.verify.store, and a daemon with [verify] off need not keep the service resident.
    if name in __all__:
        from modemd.verify import service

        return getattr(service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
