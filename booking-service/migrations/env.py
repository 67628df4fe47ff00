from booking import models
from booking.config import Settings
from chassis.migrations import run_env

run_env(models.Base.metadata, Settings().database_url)
