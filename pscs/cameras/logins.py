"""Stream logins at rest: the secret query values of a stored camera URL are encrypted with
the installation's key (:mod:`pscs.secretbox`), the ``user:password@`` password is kept apart
(encrypted too), and only :func:`connect_url` puts them back together, for an RTSP client."""

from __future__ import annotations

from pscs.cameras.sources import map_secret_params, with_credentials
from pscs.secretbox import SecretBox


def encrypt_query_secrets(secrets: SecretBox, url: str) -> str:
    return map_secret_params(url, secrets.encrypt)


def reveal_query_secrets(secrets: SecretBox, url: str) -> str:
    return map_secret_params(url, lambda value: _reveal(secrets, value))


def _reveal(secrets: SecretBox, value: str) -> str:
    try:
        return secrets.decrypt(value)
    except ValueError:
        return value  # stored before query credentials were encrypted: it is the value itself


def decrypt_optional(secrets: SecretBox, token: str | None) -> str | None:
    return secrets.decrypt(token) if token else None


def connect_url(secrets: SecretBox, stored_url: str, username: str | None, password_enc: str | None) -> str:
    """The URL a client connects to, credentials in the clear: hand it only to an RTSP
    client, never to a log or a page."""
    url = reveal_query_secrets(secrets, stored_url)
    return with_credentials(url, username, decrypt_optional(secrets, password_enc))
