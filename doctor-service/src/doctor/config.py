"""doctor-service settings: the only place its environment is read."""

from chassis.service_settings import service_settings


class Settings(service_settings("doctor")):
    """Everything doctor-service reads from its environment (or ``.env``): the chassis' settings
    and its own URLs; it has no setting of its own."""
