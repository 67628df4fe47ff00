from chassis.migrations import run_env
from notification import models
from notification.config import Settings

run_env(models.Base.metadata, Settings().database_url)
