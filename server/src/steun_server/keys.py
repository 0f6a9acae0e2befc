"""The org key (Ed25519), the TLS certificate, the SPKI pin, the SSL context and asyncio's TLS buffer."""

from __future__ import annotations

import asyncio.sslproto
import base64
import dataclasses
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from .config import ServerConfig
from .errors import ConfigError, InitError

CERT_VALIDITY_DAYS = 3 * 365


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclasses.dataclass(frozen=True, slots=True)
class ServerKeys:
    """What the running server signs with and what agents pin."""

    org_key: Ed25519PrivateKey
    #: raw 32-byte Ed25519 public key
    org_public_key: bytes
    #: sha256 of the TLS certificate's SubjectPublicKeyInfo (DER)
    spki_sha256: bytes

    def sign(self, message: bytes) -> bytes:
        return self.org_key.sign(message)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def generate_org_key(path: Path) -> Ed25519PublicKey:
    """Make the org key; refuses to overwrite an existing one."""
    if path.exists():
        raise InitError(f"{path} exists already; refusing to replace the org key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(path, pem)
    return key.public_key()


def load_org_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: run `steun init` first") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: the org key must be Ed25519")
    return key


def raw_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def default_names(extra: Iterable[str] = ()) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    hostname = socket.gethostname()
    for name in (hostname, *extra):
        if name and name not in names:
            names.append(name)
    return names


def generate_tls_certificate(cert_path: Path, key_path: Path, names: Iterable[str]) -> bytes:
    """A self-signed ECDSA P-256 certificate (browsers take it, not Ed25519). Returns the pin."""
    if cert_path.exists() or key_path.exists():
        raise InitError(f"{cert_path} or {key_path} exists already; refusing to replace it")
    key = ec.generate_private_key(ec.SECP256R1())
    names = list(names)
    san: list[x509.GeneralName] = []
    for name in names:
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            san.append(x509.DNSName(name))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Steun"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return spki_sha256(cert)


def spki_sha256(cert: x509.Certificate) -> bytes:
    """The pin: sha256 over the DER SubjectPublicKeyInfo (survives re-issuing the cert with the same key)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def load_certificate(path: Path) -> x509.Certificate:
    """The first (leaf) certificate of a PEM chain."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"TLS certificate {path} is missing") from None
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM certificate ({exc})") from None
    return chain[0]


def load_keys(config: ServerConfig) -> ServerKeys:
    org = load_org_key(config.org_key_file)
    if config.tls:
        pin = spki_sha256(load_certificate(config.tls_cert_file))
    else:
        # TLS ends at a reverse proxy: the pin must come from its certificate, which the admin names
        pin = spki_sha256(load_certificate(config.tls_cert_file)) if config.tls_cert_file.exists() else b""
    return ServerKeys(org_key=org, org_public_key=raw_public_key(org), spki_sha256=pin)


def server_ssl_context(config: ServerConfig) -> ssl.SSLContext:
    """The one server-side SSL context of this process (building one costs tens of milliseconds)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    try:
        context.load_cert_chain(str(config.tls_cert_file), str(config.tls_key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate/key ({config.tls_cert_file}): {exc}") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def set_tls_read_buffer(size: int) -> int:
    """Shrink asyncio's per-connection TLS read buffer (256 KiB by default); returns the previous size.

    ``SSLProtocol.max_size`` is the size of the buffer asyncio allocates per TLS connection to receive
    decrypted data. With thousands of idle agents it dominates memory:
    see docs/design/0001-tls-read-buffer.md.
    It is a class attribute, so this applies process-wide, to every TLS connection made after the call.
    """
    protocol = asyncio.sslproto.SSLProtocol
    previous = int(getattr(protocol, "max_size", 0))
    protocol.max_size = size
    return previous
