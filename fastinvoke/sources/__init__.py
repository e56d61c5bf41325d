"""Event sources: what calls a function besides its callers (SQS queues, schedules), and
the events they send."""
