"""C2PA content credentials: files signed here with a throwaway certificate chain.

The chain (a CA and an end-entity ES256 signing certificate) is generated per test run, so
no key material lives in the repository and nothing is fetched.
"""

from __future__ import annotations

import datetime as dt
import io

import c2pa
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from schemas.records import UploadEvent
from transforms.limits import MediaLimits
from transforms.metadata import metadata_vector, probe_media

AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tests")]
    )


def _usage(signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=not signing, crl_sign=not signing, encipher_only=False, decipher_only=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def signer():
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Test CA"))
        .issuer_name(_name("Test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(signing=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("Test Signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(signing=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, private, None))


def _signed_jpeg(signer, seed: int = 0) -> bytes:
    manifest = {
        "claim_generator_info": [{"name": "imagegen-test", "version": "2.1"}],
        "title": "generated.jpg",
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": AI_SOURCE}]}}
        ],
    }
    source, signed = io.BytesIO(), io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(source, "JPEG", quality=90)
    source.seek(0)
    c2pa.Builder(manifest).sign(signer, "image/jpeg", source, signed)
    return signed.getvalue()


def test_a_signed_file_reports_its_credentials(signer):
    info = probe_media(_signed_jpeg(signer), MediaLimits())
    assert info.c2pa_present
    assert info.c2pa_claim_generator == "imagegen-test"
    assert info.c2pa_validation == "valid"
    assert info.digital_source_type == "trainedAlgorithmicMedia"
    event = UploadEvent("c1", "/x.jpg", "a1", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    vector = metadata_vector(info, event)
    assert vector[8] == 1.0 and vector[9] == 1.0 and vector[6] == 1.0


def test_tampered_pixels_break_validation_but_are_still_read(signer):
    data = bytearray(_signed_jpeg(signer))
    data[-200] ^= 0xFF  # inside the image data, after the manifest
    info = probe_media(bytes(data), MediaLimits())
    assert info.c2pa_present
    assert info.c2pa_validation != "valid"


def test_a_file_without_credentials_is_absent_not_an_error():
    plain = io.BytesIO()
    Image.new("RGB", (32, 32)).save(plain, "PNG")
    info = probe_media(plain.getvalue(), MediaLimits())
    assert (info.c2pa_present, info.c2pa_validation) == (False, "absent")


def test_credentials_are_read_the_same_from_a_stored_file(signer, tmp_path):
    from schemas.records import StoredMedia

    data = _signed_jpeg(signer)
    path = tmp_path / "signed.jpg"
    path.write_bytes(data)
    stored = probe_media(StoredMedia(str(path), len(data), ""), MediaLimits())
    assert stored == probe_media(data, MediaLimits()) and stored.c2pa_validation == "valid"
