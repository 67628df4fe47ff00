from chassis.migrations import run_env
from doctor import models
from doctor.config import Settings

run_env(models.Base.metadata, Settings().database_url)
