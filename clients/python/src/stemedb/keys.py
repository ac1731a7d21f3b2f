"""An agent's Ed25519 key: :class:`AgentKey` signs, :func:`verify` checks.

Key files are those ``stemedb keygen`` writes: ``{"format": "stemedb-agent-key-v1", "agent":
<hex public key>, "secret_key": <hex 32-byte seed>}``, mode 0600.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .encoding import AGENT_ID_LEN, SIGNATURE_LEN, fixed_bytes, signing_message
from .errors import EncodingError, StemeError

KEY_FILE_FORMAT = "stemedb-agent-key-v1"
#: Largest key file read, in bytes; a real one is under 200.
KEY_FILE_BYTES_MAX = 4096


class AgentKey:
    """An agent's secret key. Its :attr:`agent` (the public key, as hex) is the agent's id."""

    def __init__(self, seed: Union[bytes, str]) -> None:
        self._seed = fixed_bytes(seed, 32, "secret key")
        self._private = Ed25519PrivateKey.from_private_bytes(self._seed)
        public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        #: The agent id: 64 lowercase hex digits of the public key.
        self.agent: str = public.hex()

    @classmethod
    def generate(cls) -> "AgentKey":
        """Returns a new random key (from the operating system's generator)."""
        return cls(os.urandom(32))

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"]) -> "AgentKey":
        """Reads a key file; refuses one that group or others may access, as ssh does."""
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise StemeError(f"{path}: key file is accessible by group or others (chmod 600 it)")
        with open(path, "rb") as f:
            data = f.read(KEY_FILE_BYTES_MAX + 1)
        if len(data) > KEY_FILE_BYTES_MAX:
            raise StemeError(f"{path}: larger than a key file ({KEY_FILE_BYTES_MAX} bytes)")
        try:
            doc = json.loads(data)
            if doc.get("format") != KEY_FILE_FORMAT:
                raise StemeError(f"{path}: not a {KEY_FILE_FORMAT} key file")
            key = cls(doc["secret_key"])
        except (ValueError, KeyError, AttributeError, TypeError) as e:
            raise StemeError(f"{path}: not a key file: {e}") from e
        if key.agent != doc.get("agent"):
            raise StemeError(f"{path}: its agent id does not match its secret key")
        return key

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes a key file with mode 0600; never overwrites an existing file."""
        doc = {"format": KEY_FILE_FORMAT, "agent": self.agent, "secret_key": self._seed.hex()}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())

    @property
    def secret_hex(self) -> str:
        """The 32-byte secret seed, as hex. Keep it secret."""
        return self._seed.hex()

    def sign(self, kind: str, content_hash: bytes) -> str:
        """Signs the record of ``kind`` with ``content_hash``; returns the signature as hex."""
        return self._private.sign(signing_message(kind, content_hash)).hex()

    def __repr__(self) -> str:
        return f"AgentKey(agent={self.agent})"


def verify(agent: Union[str, bytes], kind: str, content_hash: bytes, signature: Union[str, bytes]) -> bool:
    """Returns True if and only if ``signature`` is ``agent``'s signature of the record."""
    try:
        public = Ed25519PublicKey.from_public_bytes(fixed_bytes(agent, AGENT_ID_LEN, "agent"))
        public.verify(fixed_bytes(signature, SIGNATURE_LEN, "signature"), signing_message(kind, content_hash))
    except (InvalidSignature, EncodingError, ValueError):
        return False
    return True
