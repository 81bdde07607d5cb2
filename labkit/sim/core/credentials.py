"""Fake tokens from the azure-identity credentials while the simulation is active.

Constructing these credentials never touches the network; only ``get_token`` does. So
patching ``get_token`` (and ``get_token_info``, its newer twin) on the classes is enough
for notebook code written for Azure to run unchanged, and restoring them undoes it.
"""
from __future__ import annotations

import time

from azure.core.credentials import AccessToken

FAKE_TOKEN = "simulated-workspace-token"
PATCHED_CLASSES = (
    "DefaultAzureCredential",
    "InteractiveBrowserCredential",
    "AzureCliCredential",
    "ManagedIdentityCredential",
    "EnvironmentCredential",
    "DeviceCodeCredential",
    "ClientSecretCredential",
    "ChainedTokenCredential",
)


def _access_token() -> AccessToken:
    return AccessToken(FAKE_TOKEN, int(time.time()) + 3600)


def _get_token(self, *scopes, **kwargs) -> AccessToken:
    return _access_token()


def _get_token_info(self, *scopes, options=None):
    from azure.core.credentials import AccessTokenInfo

    token = _access_token()
    return AccessTokenInfo(token.token, token.expires_on)


class SimulatedCredential:
    """The credential a simulated client uses when none is given."""

    get_token = _get_token
    get_token_info = _get_token_info


def patch() -> list[tuple[type, str, object]]:
    """Patch the credential classes; returns what to restore."""
    import azure.identity

    saved = []
    for name in PATCHED_CLASSES:
        cls = getattr(azure.identity, name)
        for method, fake in (("get_token", _get_token), ("get_token_info", _get_token_info)):
            if method in vars(cls) or hasattr(cls, method):
                saved.append((cls, method, vars(cls).get(method)))
                setattr(cls, method, fake)
    return saved


def restore(saved: list[tuple[type, str, object]]) -> None:
    for cls, method, original in reversed(saved):
        if original is None:
            delattr(cls, method)
        else:
            setattr(cls, method, original)
