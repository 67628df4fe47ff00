from chassis.migrations import run_env
from scheduling import models
from scheduling.config import Settings

run_env(models.Base.metadata, Settings().database_url)
