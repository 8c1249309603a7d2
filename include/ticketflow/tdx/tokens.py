"""The TDX bearer token, shared by every task process through the application database.

Each mapped batch runs in its own process; without a shared token every one
of them would log in, and `auth/loginadmin` counts against the rate limit
like any other method. The token is stored encrypted with a key derived from
the WebServicesKey: whoever can read it could log in anyway.
"""

from __future__ import annotations

import base64
import hashlib

import psycopg
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ticketflow.tdx.client import TdxSettings


class DatabaseTokenStore:
    """`TokenStore` over `meta.tdx_token_cache`, one row per TDX account (base URL and BEID)."""

    def __init__(self, conn: psycopg.Connection, settings: TdxSettings):
        self.conn = conn
        self.account = hashlib.sha256(f"{settings.base_url}|{settings.beid}".encode()).hexdigest()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ticketflow tdx token cache").derive(
            settings.web_services_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def load(self) -> tuple[str, float] | None:
        row = self.conn.execute(
            "SELECT token_ciphertext, extract(epoch FROM expires_at) FROM meta.tdx_token_cache"
            " WHERE account = %s AND expires_at > now()", (self.account,)).fetchone()
        if row is None:
            return None
        try:
            return self._fernet.decrypt(bytes(row[0])).decode(), float(row[1])
        except InvalidToken:  # the key changed: log in again
            return None

    def save(self, token: str, expires_at: float) -> None:
        self.conn.execute(
            "INSERT INTO meta.tdx_token_cache (account, token_ciphertext, expires_at)"
            " VALUES (%s, %s, to_timestamp(%s))"
            " ON CONFLICT (account) DO UPDATE SET token_ciphertext = EXCLUDED.token_ciphertext,"
            " expires_at = EXCLUDED.expires_at, saved_at = now()",
            (self.account, self._fernet.encrypt(token.encode()), expires_at))
