import stat
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chassis.auth import InvalidToken
from identity.adapters.keys import (
    KeyRing,
    load_key_ring,
    load_or_create_private_key,
    private_key_pem,
    thumbprint,
)
from identity.config import Settings


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_the_kid_is_the_rfc_7638_thumbprint_of_the_public_key():
    # The Ed25519 example of RFC 8037, appendix A.3.
    assert (
        thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    )


def test_the_jwks_lists_the_public_key_with_its_kid_algorithm_and_use():
    ring = KeyRing.of(Ed25519PrivateKey.generate())
    (jwk,) = ring.jwks()["keys"]
    assert jwk["kid"] == ring.kid
    assert jwk["alg"] == "EdDSA" and jwk["use"] == "sig" and jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    assert "d" not in jwk


def test_a_key_ring_refuses_an_unknown_kid():
    with pytest.raises(InvalidToken):
        KeyRing.of(Ed25519PrivateKey.generate())("no-such-kid")


def test_a_missing_key_file_is_created_with_owner_only_permissions(tmp_path):
    path = tmp_path / "keys" / "jwt.pem"
    key = load_or_create_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_private_key(path).public_key() == key.public_key()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_replicas_creating_the_key_file_at_once_all_end_up_with_the_same_key(tmp_path):
    path = tmp_path / "jwt.pem"
    barrier = threading.Barrier(8)
    keys = []

    def start_replica():
        barrier.wait()
        keys.append(load_or_create_private_key(path))

    threads = [threading.Thread(target=start_replica) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({private_key_pem(key) for key in keys}) == 1
    assert private_key_pem(keys[0]) == path.read_bytes()


def test_the_private_key_may_come_from_the_environment_with_escaped_newlines():
    key = Ed25519PrivateKey.generate()
    escaped = private_key_pem(key).decode().replace("\n", "\\n")
    ring = load_key_ring(Settings(jwt_private_key=escaped))
    assert ring.signing_key.public_key() == key.public_key()


def test_a_private_key_that_is_not_ed25519_is_refused():
    ec_pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_key_ring(Settings(jwt_private_key=ec_pem.decode()))


def test_previous_public_keys_stay_accepted_after_a_key_rotation(tmp_path):
    old, older = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    bundle = tmp_path / "previous.pem"
    bundle.write_text(public_pem(old) + public_pem(older))
    ring = load_key_ring(
        Settings(
            jwt_private_key=private_key_pem(Ed25519PrivateKey.generate()).decode(),
            jwt_previous_public_keys_file=str(bundle),
        )
    )
    kids = [jwk["kid"] for jwk in ring.jwks()["keys"]]
    assert kids[0] == ring.kid and len(kids) == 3
    assert ring(KeyRing.of(old).kid).public_bytes_raw() == old.public_key().public_bytes_raw()
