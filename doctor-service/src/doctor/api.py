"""doctor-service routes."""

from fastapi import APIRouter

router = APIRouter()
