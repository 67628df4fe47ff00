"""``python -m chassis.messaging.deadletters --service NAME list|replay``."""

import sys

from chassis.messaging.deadletters import main

sys.exit(main())
