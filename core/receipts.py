"""Prediction receipts: an HMAC over the prediction id, so only the caller who got a prediction
can correct it, and nobody can correct ids they guessed."""

from __future__ import annotations

import hashlib
import hmac

from core.settings import Secret


def sign(secret: Secret | str, prediction_id: str) -> str:
    key = secret.reveal() if isinstance(secret, Secret) else secret
    return hmac.new(key.encode(), prediction_id.encode(), hashlib.sha256).hexdigest()


def verify(secret: Secret | str, prediction_id: str, receipt: str) -> bool:
    """Whether `receipt` is the one abvoc issued for `prediction_id`; never raises on odd text
    (`hmac.compare_digest` refuses non-ASCII str, and a lone surrogate cannot be encoded)."""
    if not isinstance(receipt, str) or not receipt.isascii():
        return False
    try:
        expected = sign(secret, prediction_id)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, receipt)
