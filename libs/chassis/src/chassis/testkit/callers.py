"""Callers of a service's API by role, each a user of its own: ``callers("patient")``.

A ``Caller`` is ``(id, headers)``: the user id and the Authorization header of an access
token a ``TokenMinter`` signed (the app under test trusts it: ``minter.trust(app, service)``).
Roles are the product's words, given by the tests; the chassis knows none. Ids come from one
counter per run, so tests sharing a database never see each other's users.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import NamedTuple

import pytest

from chassis.testkit.tokens import TokenMinter


class Caller(NamedTuple):
    id: int
    headers: dict[str, str]


class Callers:
    """``callers(role)`` → a new caller of ``role``; ``callers(role, user_id)`` → that user."""

    def __init__(self, minter: TokenMinter, first_id: int | None = None) -> None:
        self.minter = minter
        self._ids = itertools.count(first_id or random.randrange(1_000_000, 2_000_000_000))

    def __call__(self, role: str, user_id: int | None = None) -> Caller:
        user_id = self.new_id() if user_id is None else user_id
        return Caller(user_id, self.minter.headers(user_id=user_id, role=role))

    def new_id(self) -> int:
        """A user (or other) id no other test of the run uses."""
        return next(self._ids)

    def service(self, client: str, audience: str) -> dict[str, str]:
        """The Authorization header of ``client`` (a service) calling ``audience``'s internal API."""
        return {"Authorization": self.minter.service_credentials(client).authorization(audience)}


@pytest.fixture(scope="session")
def minter() -> TokenMinter:
    """The run's token signer: apps under test trust it instead of identity."""
    return TokenMinter()


@pytest.fixture(scope="session")
def callers(minter: TokenMinter) -> Callers:
    return Callers(minter)


@pytest.fixture(scope="session")
def new_id(callers: Callers) -> Callable[[], int]:
    """``new_id()`` → an id no other test of the run uses."""
    return callers.new_id
