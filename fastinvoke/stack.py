"""A SAM template's functions put into an Invoker, as a deployment would: each function
(created, or changed where it differs), its EventInvokeConfig and its AutoPublishAlias,
and for a function that could not load, the reason its invocations fail with."""

from __future__ import annotations

from .autopublish import publish_aliases
from .invoker import Invoker
from .sam import Template


def deploy(invoker: Invoker, template: Template, only: str | None = None) -> list[str]:
    """Put the template's functions (or only the function ``only``) into ``invoker``;
    the lines saying where their aliases point."""
    for name, reason in template.unloadable.items():
        invoker.mark_unloadable(name, reason)
    for config in template.functions:
        if only not in (None, config.name):
            continue
        invoker.put_function(config)
        if config.name in template.event_configs:
            invoker.event_invoke_config(config.name, **template.event_configs[config.name])
    return publish_aliases(invoker, {name: alias for name, alias in template.aliases.items()
                                     if only in (None, name)})
