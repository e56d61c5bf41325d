"""The worker pools: templates, workers and the supervisor that keeps them healthy."""
