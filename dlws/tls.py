"""TLS certificate checks on the controller: PEM parsing, key against certificate, fingerprints."""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def fingerprint(pem_or_der: bytes | str) -> str:
    """SHA-256 fingerprint of a certificate (PEM text or DER bytes), as openssl prints it."""
    der = (ssl.PEM_cert_to_DER_cert(pem_or_der) if isinstance(pem_or_der, str)
           else pem_or_der)
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def spki_sha256_b64(cert_pem: bytes) -> str:
    """base64 SHA-256 of a certificate's public key (Chromium's spki pin list)."""
    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    spki = key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def pair_problem(cert: str | None, key: str | None) -> str | None:
    """Why a certificate/key pair given on the controller cannot serve TLS; None when it can.

    Both or neither: neither means a self-signed certificate is made on the host. The key's
    contents never appear in the message.
    """
    if not cert and not key:
        return None
    if not cert or not key:
        return ("give both notebooks_tls_cert and notebooks_tls_key (PEM files on the "
                "controller), or neither for a self-signed certificate made on the host")
    cert_path, key_path = Path(os.path.expanduser(cert)), Path(os.path.expanduser(key))
    if not cert_path.is_file() or not key_path.is_file():
        return None  # each key's own check names the missing path
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        return (f"{cert} is not a PEM certificate (-----BEGIN CERTIFICATE-----); convert it "
                "with `openssl x509 -inform DER -in FILE -out cert.pem` if it is DER")
    try:
        private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        reason = "it is encrypted" if isinstance(error, TypeError) else "it does not parse"
        return (f"notebooks_tls_key {key} is not an unencrypted PEM private key ({reason}); "
                "the hub starts unattended: give it a key without a passphrase "
                "(`openssl pkey -in KEY -out key.pem`)")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (private.public_key().public_bytes(serialization.Encoding.DER, public)
            != certificate.public_key().public_bytes(serialization.Encoding.DER, public)):
        return (f"the private key {key} does not belong to the certificate {cert} (their public "
                "keys differ); give the key the certificate was issued for")
    return None
