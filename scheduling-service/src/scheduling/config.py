"""scheduling-service settings: the only place its environment is read."""

from functools import lru_cache

from chassis.settings import AuthSettings, BaseServiceSettings, BrokerSettings, database_url_field


class Settings(BaseServiceSettings, BrokerSettings, AuthSettings):
    database_url: str = database_url_field("scheduling")


@lru_cache
def get_settings() -> Settings:
    return Settings()
