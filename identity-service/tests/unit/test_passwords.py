from identity.adapters.security import Passwords

CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


def test_a_hash_verifies_its_password_only():
    passwords = Passwords(**CHEAP)
    password_hash = passwords.hash("correct horse battery")
    assert password_hash.startswith("$argon2id$")
    assert passwords.verify(password_hash, "correct horse battery")
    assert not passwords.verify(password_hash, "Correct horse battery")


def test_a_corrupt_hash_never_verifies():
    assert not Passwords(**CHEAP).verify("not-a-hash", "correct horse battery")


def test_a_hash_made_with_other_parameters_needs_rehashing():
    old = Passwords(**CHEAP).hash("correct horse battery")
    stronger = Passwords(time_cost=2, memory_cost=16, parallelism=1)
    assert stronger.needs_rehash(old)
    assert not stronger.needs_rehash(stronger.hash("correct horse battery"))
    assert stronger.verify(old, "correct horse battery")
