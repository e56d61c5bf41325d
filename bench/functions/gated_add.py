"""``add``, except that an event {"gate": PATH} waits until PATH exists: the drain
benchmark holds both workers with it while events queue up behind them."""

import os
import time
from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> int:
    if "gate" in event:
        while not os.path.exists(event["gate"]):
            time.sleep(0.001)
        return 0
    return event["value1"] + event["value2"]
