from chassis.migrations import run_env
from identity import models
from identity.config import Settings

run_env(models.Base.metadata, Settings().database_url)
