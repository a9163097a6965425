"""Encryption at rest for stored secrets (TOTP seeds, camera passwords).

A Fernet key in ``<data_dir>/keys/secrets.key`` (mode 0600) encrypts them; a copy of the
database alone does not reveal them.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "secrets.key"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def create(cls, keys_dir: Path, *, overwrite: bool = False) -> SecretBox:
        keys_dir.mkdir(parents=True, exist_ok=True)
        path = keys_dir / KEY_FILE
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists")
        key = Fernet.generate_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        return cls(key)

    @classmethod
    def load(cls, keys_dir: Path) -> SecretBox:
        return cls((keys_dir / KEY_FILE).read_bytes().strip())

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("stored secret cannot be decrypted with this installation's key") from exc
