"""A self-signed certificate for the local AWS, so it speaks HTTPS like AWS does.

Every bucket's policy denies requests made without TLS (`aws:SecureTransport` false), and moto
enforces bucket policies: over plain HTTP the local environment could not write a single object.
Serving HTTPS keeps the TLS-only policy exactly as it is in AWS. The certificate is for 127.0.0.1
only, lives in .mlops/local/tls, and clients trust it explicitly (AWS_CA_BUNDLE / verify=).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

VALID_DAYS = 825  # the longest validity clients accept for a TLS server certificate


def ensure_certificate(folder: Path) -> tuple[Path, Path]:
    """(certificate, private key) for 127.0.0.1 and localhost, created once per checkout."""
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.is_file() and key_path.is_file() and not _expiring(cert_path):
        return cert_path, key_path
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlops local AWS (moto)")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
        ]), critical=False)
        # Its own CA: clients that are given this file as their bundle trust it and nothing else new.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _expiring(cert_path: Path) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        return True
    return cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=7)
