"""Verifying mobile-originated codes: an application asks, a phone answers by SMS, modemd tells."""

from modemd.verify.service import RequestError, Screening, Verifier, VerifySettings

__all__ = ["RequestError", "Screening", "Verifier", "VerifySettings"]
